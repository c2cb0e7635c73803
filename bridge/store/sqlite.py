"""The SQLite backend: one file on local disk (or ``:memory:``), nothing to install.

Connections: one for reads, one for number writes and one owned by the writer thread
(WAL lets reads proceed while another connection writes).  ``:memory:`` exists only
inside one connection, so there all three share a single connection, serialised by one
lock.  The schema and how a connection is opened live in :mod:`bridge.store.schema`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from bridge.errors import InputError, StoreError
from bridge.store import rows, schema
from bridge.store.records import NumberRecord
from bridge.store.writer import BatchItem

T = TypeVar("T")

# Lock contention: the same connection may try again; anything else reopens it.
_RETRYABLE_IN_PLACE: Final = {"SQLITE_BUSY", "SQLITE_LOCKED"}


@dataclass
class DbHandle:
    """A connection and the lock that serialises its use; ``owned`` = ours to close."""

    conn: sqlite3.Connection
    lock: threading.Lock = field(default_factory=threading.Lock)
    owned: bool = True

    # -- the writer's side (bridge.store.writer.BatchConn) ---------------------------

    def write_batch(self, batch: Sequence[BatchItem]) -> list[str]:
        """Write a batch in one transaction; return SIDs of updates that matched no row."""
        unknown: list[str] = []
        with self.lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sid, record, fields, _seq in batch:
                    if record is not None:
                        conn.execute(rows.UPSERT_CALL, rows.call_to_row(record))
                    elif fields:
                        names = list(fields)
                        cur = conn.execute(
                            rows.update_call_sql(names),
                            [*(rows.call_value(n, fields[n]) for n in names), sid],
                        )
                        if cur.rowcount == 0:
                            unknown.append(sid)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        return unknown

    def retry_in_place(self, e: Exception) -> bool:
        return (
            isinstance(e, sqlite3.Error)
            and getattr(e, "sqlite_errorname", "") in _RETRYABLE_IN_PLACE
        )

    def close(self) -> None:
        if self.owned:
            self.conn.close()


class SqliteBackend:
    def __init__(
        self,
        path: str,
        *,
        busy_timeout_s: float,
        writer_busy_timeout_s: float,
        max_db_bytes: int | None,
    ):
        self.path = path
        self._max_db_bytes = max_db_bytes
        self._writer_busy_timeout_s = writer_busy_timeout_s
        self._memory = path == schema.MEMORY
        self._closed = False
        self._atomic_lock = threading.Lock()
        conn = self._connect(busy_timeout_s)
        try:
            schema.migrate(conn, path)
        except BaseException:
            conn.close()
            raise
        self._read = DbHandle(conn)
        self._admin = self._read if self._memory else DbHandle(self._connect(busy_timeout_s))
        self._atomic: DbHandle | None = self._read if self._memory else None  # on first use

    @property
    def label(self) -> str:
        return self.path

    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        return schema.connect(
            self.path, busy_timeout_s=busy_timeout_s, max_db_bytes=self._max_db_bytes
        )

    def open_writer(self) -> DbHandle:
        if self._memory:
            return DbHandle(self._read.conn, self._read.lock, owned=False)
        return DbHandle(self._connect(self._writer_busy_timeout_s))

    def close(self) -> None:
        handles = [self._read, self._admin, *([self._atomic] if self._atomic else [])]
        for h in {id(h): h for h in handles}.values():
            with h.lock:
                self._closed = True
                h.conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read.lock:
            self._check_open()
            try:
                return self._read.conn.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"cannot read {self.path}: {e}") from None

    def write_numbers(
        self,
        upserts: Sequence[NumberRecord],
        deletes: Sequence[str],
        also: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> int:
        deleted = 0
        with self._admin.lock:
            self._check_open()
            conn = self._admin.conn
            try:
                with _immediate(conn):
                    for rec in upserts:
                        conn.execute(rows.UPSERT_NUMBER, rows.number_to_row(rec))
                    for key in deletes:
                        deleted += conn.execute(rows.DELETE_NUMBER, (key, key)).rowcount
                    for sql, params in also:
                        conn.execute(sql, params)
            except sqlite3.IntegrityError:
                raise InputError(
                    "phone_number_id", "already belongs to another number", status=409
                ) from None
            except sqlite3.Error as e:
                raise StoreError(f"cannot write numbers to {self.path}: {e}") from None
        return deleted

    def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        counts: list[int] = []
        with self._admin.lock:
            self._check_open()
            conn = self._admin.conn
            try:
                with _immediate(conn):
                    counts = [conn.execute(sql, params).rowcount for sql, params in statements]
            except sqlite3.Error as e:
                raise StoreError(f"cannot write to {self.path}: {e}") from None
        return counts

    def prune_calls(self, ended_before: float) -> int:
        with self._admin.lock:
            self._check_open()
            try:
                return self._admin.conn.execute(rows.PRUNE_CALLS, (ended_before,)).rowcount
            except sqlite3.Error as e:
                raise StoreError(f"cannot prune calls in {self.path}: {e}") from None

    def atomic(self, fn: Callable[[_SqliteTx], T], *, lock: int, timeout_s: float) -> T:
        # BEGIN IMMEDIATE takes the database's one write lock: every writer of every
        # process waits for it, so ``lock`` needs no key of its own here.
        with self._atomic_lock:
            self._check_open()
            if self._atomic is None:
                self._atomic = DbHandle(self._connect(timeout_s))
            h = self._atomic
        with h.lock:
            self._check_open()
            conn = h.conn
            try:
                if h is not self._read:  # (``:memory:`` shares the reads' connection)
                    conn.execute(f"PRAGMA busy_timeout = {max(1, int(timeout_s * 1000))}")
                with _immediate(conn):
                    out = fn(_SqliteTx(conn))
            except sqlite3.Error as e:
                raise StoreError(f"cannot write {self.path}: {e}") from None
        return out


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (``BEGIN IMMEDIATE``: the database's write lock taken at
    once); committed when the block ends, rolled back when it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount
