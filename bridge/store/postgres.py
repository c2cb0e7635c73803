"""The PostgreSQL backend: one database shared by every bridge instance.

Driver: psycopg 3, its synchronous API.  The store's contract is synchronous — the
call-record writer is a thread of its own, and the admin API already runs store reads
in worker threads — so the honest fit is psycopg's blocking connections in those
threads rather than an async driver bridged back into threads:

* the **writer thread** owns one connection, as with SQLite; every failure is retried
  by :class:`~bridge.store.writer.CallWriter` with backoff, reconnecting when the
  connection broke (server restarted, network gone);
* **reads and number writes** share a small :class:`psycopg_pool.ConnectionPool`
  (connections checked before use, so a pool full of connections to a restarted
  server heals at the first read).

Nothing here may stall the event loop for long when the server is away: a read made
on an event-loop thread waits at most :data:`LOOP_WAIT_S` for a pooled connection
(other threads wait ``busy_timeout_s``), and after a read found the server unreachable,
reads fail at once (:class:`~bridge.errors.StoreError`) for :data:`PROBE_INTERVAL_S`
before the next one tries again.  ``store.read_failing`` (ERROR) and
``store.read_recovered`` say when that starts and ends.

``lock_timeout`` plays SQLite's busy timeout: a statement waiting for a lock longer
than ``busy_timeout_s`` (writer: ``writer_busy_timeout_s``) fails and is reported or
retried, instead of hanging.  The DSN may carry a password: logs and errors name the
database by :func:`dsn_label`, never by the DSN.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from bridge.errors import InputError, StoreError
from bridge.log import log_event
from bridge.store import pg_schema, rows
from bridge.store.records import NumberRecord
from bridge.store.writer import BatchItem

logger = logging.getLogger("bridge.store")
T = TypeVar("T")

LOOP_WAIT_S: Final = 0.25
PROBE_INTERVAL_S: Final = 1.0
CONNECT_TIMEOUT_S: Final = 3  # libpq's connect_timeout (whole seconds, 2 at least)
POOL_MAX: Final = 8
# Pool reconnection gives up after this long, then reconnects on demand at the next
# read: its own backoff (1 s doubling) would otherwise keep reads waiting long after
# the server is back.
POOL_RECONNECT_S: Final = 5.0
READ_STATEMENT_TIMEOUT_MS: Final = 10_000
WRITE_STATEMENT_TIMEOUT_MS: Final = 30_000


def dsn_label(dsn: str) -> str:
    """``postgresql://user@host:port/dbname`` of ``dsn``, without password or options.

    StoreError (naming no part of the DSN) if it cannot be parsed.
    """
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.Error:
        raise StoreError("store.db is not a valid PostgreSQL DSN (value hidden)") from None
    user = info.get("user", "")
    port = info.get("port", "")
    return (
        f"postgresql://{user}{'@' if user else ''}{info.get('host', '')}"
        f"{':' if port else ''}{port}/{info.get('dbname', '')}"
    )


@functools.lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """Our ``?``-marked SQL in psycopg's ``%s`` style (our SQL has no ``%`` or ``?``)."""
    return sql.replace("?", "%s")


def _timeouts(conn: psycopg.Connection, lock_timeout_s: float, statement_ms: int) -> None:
    conn.execute(f"SET lock_timeout = {max(1, int(lock_timeout_s * 1000))}")
    conn.execute(f"SET statement_timeout = {statement_ms}")


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class WriterConn:
    """The writer thread's connection (:class:`bridge.store.writer.BatchConn`)."""

    def __init__(self, dsn: str, *, lock_timeout_s: float):
        self.conn = psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="bridge-store-writer",
        )
        _timeouts(self.conn, lock_timeout_s, WRITE_STATEMENT_TIMEOUT_MS)

    def write_batch(self, batch: Sequence[BatchItem]) -> list[str]:
        unknown: list[str] = []
        with self.conn.transaction(), self.conn.cursor() as cur:
            whole = [rows.call_to_row(r) for _sid, r, _f, _seq in batch if r is not None]
            if whole:
                cur.executemany(_pg(rows.UPSERT_CALL), whole)
            for sid, record, fields, _seq in batch:
                if record is None and fields:
                    names = list(fields)
                    cur.execute(
                        _pg(rows.update_call_sql(names)),
                        [*(rows.call_value(n, fields[n]) for n in names), sid],
                    )
                    if cur.rowcount == 0:
                        unknown.append(sid)
        return unknown

    def retry_in_place(self, e: Exception) -> bool:
        # A lock timeout leaves the connection usable; a lost server does not.
        return not (self.conn.broken or self.conn.closed)

    def close(self) -> None:
        self.conn.close()


class PostgresBackend:
    def __init__(self, dsn: str, *, busy_timeout_s: float, writer_busy_timeout_s: float):
        self._dsn = dsn
        self._label = dsn_label(dsn)
        self._busy_timeout_s = busy_timeout_s
        self._writer_busy_timeout_s = writer_busy_timeout_s
        self._lock = threading.Lock()
        self._closed = False
        self._down_until = 0.0  # monotonic; 0 = reads are not known to fail
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                pg_schema.migrate(conn, self._label)
        except psycopg.Error as e:
            raise StoreError(f"cannot open database {self._label}: {e}") from None
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=POOL_MAX,
            kwargs={
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT_S,
                "application_name": "bridge-store",
            },
            configure=self._configure,
            check=ConnectionPool.check_connection,
            timeout=busy_timeout_s,
            reconnect_timeout=POOL_RECONNECT_S,
            name="bridge-store",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=max(busy_timeout_s, CONNECT_TIMEOUT_S))
        except PoolTimeout:
            self._pool.close()
            raise StoreError(f"cannot open database {self._label}: no connection") from None

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        _timeouts(conn, self._busy_timeout_s, READ_STATEMENT_TIMEOUT_MS)

    @property
    def label(self) -> str:
        return self._label

    def open_writer(self) -> WriterConn:
        return WriterConn(self._dsn, lock_timeout_s=self._writer_busy_timeout_s)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.close()

    # -- reads and number writes: the pool, with a circuit for an unreachable server ---

    def _before(self, what: str) -> float:
        """Raise if closed or known unreachable; else how long to wait for a connection."""
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self._label} is closed")
            if time.monotonic() < self._down_until:
                raise StoreError(f"cannot {what} {self._label}: database unreachable")
        return min(self._busy_timeout_s, LOOP_WAIT_S) if _on_event_loop() else self._busy_timeout_s

    def _after(self, error: psycopg.Error | None) -> None:
        """Open the circuit on an unreachable server, close it on the next success."""
        # (a pool timeout is an OperationalError too; lock and statement timeouts are not
        # about reachability)
        unreachable = isinstance(error, psycopg.OperationalError) and not isinstance(
            error, pg_errors.LockNotAvailable | pg_errors.QueryCanceled
        )
        with self._lock:
            was_down = self._down_until > 0
            if unreachable:
                self._down_until = time.monotonic() + PROBE_INTERVAL_S
            elif error is None and was_down:
                self._down_until = 0.0
            else:
                return
        if unreachable and not was_down:
            log_event(
                logger,
                "store.read_failing",
                logging.ERROR,
                db=self._label,
                error=f"{type(error).__name__}: {error}",
                note=f"reads fail at once; retried every {PROBE_INTERVAL_S:g} s",
            )
        elif error is None:
            log_event(logger, "store.read_recovered", db=self._label)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        wait = self._before("read")
        try:
            with self._pool.connection(timeout=wait) as conn:
                out = conn.execute(_pg(sql), params).fetchall()
        except psycopg.Error as e:
            self._after(e)
            raise StoreError(f"cannot read {self._label}: {_reason(e)}") from None
        self._after(None)
        return out

    def write_numbers(
        self,
        upserts: Sequence[NumberRecord],
        deletes: Sequence[str],
        also: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> int:
        wait = self._before("write numbers to")
        deleted = 0
        try:
            with (
                self._pool.connection(timeout=wait) as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                for rec in upserts:
                    cur.execute(_pg(rows.UPSERT_NUMBER), rows.number_to_row(rec))
                for key in deletes:
                    cur.execute(_pg(rows.DELETE_NUMBER), (key, key))
                    deleted += cur.rowcount
                for sql, params in also:
                    cur.execute(_pg(sql), params)
        except pg_errors.UniqueViolation:
            self._after(None)
            raise InputError(
                "phone_number_id", "already belongs to another number", status=409
            ) from None
        except psycopg.Error as e:
            self._after(e)
            raise StoreError(f"cannot write numbers to {self._label}: {_reason(e)}") from None
        self._after(None)
        return deleted

    def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        wait = self._before("write to")
        counts: list[int] = []
        try:
            with (
                self._pool.connection(timeout=wait) as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                for sql, params in statements:
                    cur.execute(_pg(sql), params)
                    counts.append(cur.rowcount)
        except psycopg.Error as e:
            self._after(e)
            raise StoreError(f"cannot write to {self._label}: {_reason(e)}") from None
        self._after(None)
        return counts

    def atomic(self, fn: Callable[[_PgTx], T], *, lock: int, timeout_s: float) -> T:
        wait = min(self._before("write to"), timeout_s)
        ms = max(1, int(timeout_s * 1000))
        try:
            with (
                self._pool.connection(timeout=wait) as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                # One round trip: settings that end with the transaction, then the lock.
                # The lock wait is bounded like the caller's (lock_timeout covers
                # advisory locks).  No wait for the WAL flush at commit: these rows are
                # leases and claims that expire by themselves, a commit is visible to
                # other sessions at once all the same, and only a crash of the server
                # may lose the last ones (docs/deploy.md).
                cur.execute(
                    "SELECT set_config('lock_timeout', %s, true), "
                    "set_config('statement_timeout', %s, true), "
                    "set_config('synchronous_commit', 'off', true), "
                    "pg_advisory_xact_lock(%s)",
                    (str(ms), str(ms), lock),
                )
                out = fn(_PgTx(cur))
        except psycopg.Error as e:
            self._after(e)
            raise StoreError(f"cannot write to {self._label}: {_reason(e)}") from None
        self._after(None)
        return out

    def prune_calls(self, ended_before: float) -> int:
        wait = self._before("prune calls in")
        try:
            with self._pool.connection(timeout=wait) as conn:
                n = conn.execute(_pg(rows.PRUNE_CALLS), (ended_before,)).rowcount
        except psycopg.Error as e:
            self._after(e)
            raise StoreError(f"cannot prune calls in {self._label}: {_reason(e)}") from None
        self._after(None)
        return n


class _PgTx:
    def __init__(self, cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
        self.cur = cur

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.cur.execute(_pg(sql), params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.cur.execute(_pg(sql), params).rowcount


def _reason(e: psycopg.Error) -> str:
    # SQLite says "database is locked"; say the same of a lock timeout, for operators.
    if isinstance(e, pg_errors.LockNotAvailable):
        return f"database is locked ({str(e).strip()})"
    return str(e).strip()
