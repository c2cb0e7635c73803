"""The store: provisioned numbers and call records, in SQLite or PostgreSQL.

``Store(db)`` opens SQLite for a file path or ``:memory:`` (:mod:`bridge.store.sqlite`)
and PostgreSQL for a ``postgresql://`` DSN (:mod:`bridge.store.postgres`).  Both keep
the same contract (:class:`~bridge.store.backend.Backend`); everything else is here,
once:

* **Numbers** are written rarely, by admin actions and routing syncs, and the caller
  wants to know it worked: :meth:`Store.upsert_number` and friends write synchronously
  in their own transaction and raise :class:`~bridge.errors.StoreError` when the
  database cannot (e.g. locked past ``busy_timeout_s``, or unreachable).
* **Call records** are written from the audio path, which must never wait:
  :meth:`Store.record_call` / :meth:`Store.update_call` hand the change to the
  :class:`~bridge.store.writer.CallWriter` thread and return at once.

Reads (:meth:`get_call`, :meth:`list_calls`, numbers) are synchronous, indexed and
fast, for admin endpoints.  Call reads overlay the writer's pending changes on what the
database returns, so an admin GET right after an update sees it even while the disk is
stuck or the server is down; and when the database cannot answer at all,
:meth:`get_call` falls back to this instance's last view of the call (the webhooks that
finish a call's record read it first).
"""

from __future__ import annotations

import base64
import binascii
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

import msgspec
from prometheus_client import CollectorRegistry

from bridge.config import StoreConfig
from bridge.errors import InputError, StoreError
from bridge.store import deliveries, rows
from bridge.store.backend import Backend, Tx
from bridge.store.bus import ROUTING_CHANGED, RoutingChanged, publish_statements
from bridge.store.records import (
    LIVE_STATUSES,
    CallPage,
    CallRecord,
    NumberRecord,
    validate_call,
    validate_call_fields,
    validate_number,
)
from bridge.store.sqlite import SqliteBackend
from bridge.store.writer import CallWriter, StoreMetrics

MAX_PAGE: Final = 1000
KNOWN_CALLS: Final = 4096  # calls whose last version get_call can answer with the db down
_SQL_CHUNK: Final = 500  # stays far below either database's bound-parameter limit
_LIVE_SQL: Final = ", ".join(f"'{s}'" for s in LIVE_STATUSES)
_cursor_decode = msgspec.json.Decoder(tuple[float, str]).decode
POSTGRES_SCHEMES: Final = ("postgresql://", "postgres://")
# A routing event names at most this many changed numbers; a bigger sync says "all".
_ROUTING_EVENT_KEYS: Final = 100
T = TypeVar("T")


def is_postgres(db: str) -> bool:
    """Whether ``db`` (``store.db``) names a PostgreSQL server rather than a file."""
    return db.startswith(POSTGRES_SCHEMES)


class Store:
    """Numbers and call records in SQLite or PostgreSQL.  Safe to use from any thread.

    ``busy_timeout_s`` bounds how long a read or number write waits for a lock (and on
    PostgreSQL, for a pooled connection); ``writer_busy_timeout_s`` the same for one
    attempt of the call-record writer, which then retries with backoff.  ``instance``
    (default: the host name, a pod's name in Kubernetes) is written into the record of
    each call whose stream this instance handles: with the change that sets the call's
    ``stream_sid``, unless that change names an instance itself.
    """

    def __init__(
        self,
        path: str,
        *,
        max_pending_writes: int = 100_000,
        max_db_bytes: int | None = None,
        busy_timeout_s: float = 2.0,
        writer_busy_timeout_s: float = 1.0,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        linger_s: float = 0.01,
        close_timeout_s: float = 5.0,
        registry: CollectorRegistry | None = None,
        instance: str | None = None,
        instance_grace_s: float = 30.0,
    ):
        # This bridge instance, stamped on the calls whose streams it handles.
        self.instance = instance or socket.gethostname()
        # Calls of an instance silent this long are not listed as live (see list_calls).
        self.instance_grace_s = instance_grace_s
        self.postgres = is_postgres(path)
        self._close_timeout_s = close_timeout_s
        self._closed = False
        self._db: Backend
        if is_postgres(path):
            # Imported here: psycopg and its libpq take ~0.14 s to import, which SQLite
            # users (and every CLI command) need not pay.
            from bridge.store.postgres import PostgresBackend

            self._db = PostgresBackend(
                path, busy_timeout_s=busy_timeout_s, writer_busy_timeout_s=writer_busy_timeout_s
            )
        else:
            self._db = SqliteBackend(
                path,
                busy_timeout_s=busy_timeout_s,
                writer_busy_timeout_s=writer_busy_timeout_s,
                max_db_bytes=max_db_bytes,
            )
        # The latest version of each call this instance recorded or read (bounded): what
        # get_call answers when the database cannot (read_failing is logged then).
        self._known: OrderedDict[str, CallRecord] = OrderedDict()
        self._known_lock = threading.Lock()
        # What logs and errors may show: a path, or a DSN without its password.
        self.label = self._db.label
        self._writer = CallWriter(
            self._db.open_writer,
            db_label=self.label,
            max_pending=max_pending_writes,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
            linger_s=linger_s,
            metrics=StoreMetrics(registry),
        )

    @classmethod
    def from_config(
        cls,
        cfg: StoreConfig,
        registry: CollectorRegistry | None = None,
        *,
        instance: str | None = None,
    ) -> Store:
        """The store as configured; its metrics go to ``registry`` (the app's /metrics)."""
        return cls(
            cfg.db,
            registry=registry,
            instance=instance,
            instance_grace_s=cfg.instance_grace_s,
            max_pending_writes=cfg.max_pending_writes,
            max_db_bytes=cfg.max_db_mb * 1024 * 1024 if cfg.max_db_mb else None,
        )

    # -- lifecycle -------------------------------------------------------------------

    def close(self, timeout_s: float | None = None) -> int:
        """Flush queued call records (retrying up to ``timeout_s``) and close.

        Returns the number of call records that could not be written (logged).
        """
        if self._closed:
            return 0
        lost = self._writer.close(self._close_timeout_s if timeout_s is None else timeout_s)
        self._closed = True
        self._db.close()
        return lost

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Block until queued call records are written; False if not within ``timeout_s``.

        Blocking: for shutdown, CLI commands and tests, not for the event loop.
        """
        return self._writer.flush(timeout_s)

    # -- health ----------------------------------------------------------------------

    @property
    def pending_writes(self) -> int:
        """Calls whose latest changes are queued, not yet in the database."""
        return self._writer.pending_writes

    @property
    def write_failures(self) -> int:
        """Failed call-record write attempts since start (each one is retried)."""
        return self._writer.write_failures

    @property
    def dropped_writes(self) -> int:
        """Call records dropped because the queue was full."""
        return self._writer.dropped_writes

    @property
    def healthy(self) -> bool:
        """True unless call-record writes are currently failing or being dropped."""
        return self._writer.healthy

    # -- numbers ---------------------------------------------------------------------

    def list_numbers(self) -> list[NumberRecord]:
        rs = self._db.query(f"SELECT {rows.NUMBER_COLUMNS} FROM numbers ORDER BY number")
        return [rows.row_to_number(r) for r in rs]

    def get_number(self, number_or_id: str) -> NumberRecord | None:
        """By E.164 number or by the platform's ``phone_number_id``."""
        rs = self._db.query(
            f"SELECT {rows.NUMBER_COLUMNS} FROM numbers "
            "WHERE number = ? OR phone_number_id = ? LIMIT 1",
            (number_or_id, number_or_id),
        )
        return rows.row_to_number(rs[0]) if rs else None

    def upsert_number(self, rec: NumberRecord) -> NumberRecord:
        """Insert or replace the number's row; returns it as stored (``updated_at`` set).

        InputError (409) if its ``phone_number_id`` belongs to another number.
        """
        stored = msgspec.structs.replace(validate_number(rec), updated_at=time.time())
        self._write_numbers([stored], ())
        return stored

    def delete_number(self, number_or_id: str) -> bool:
        """Remove by number or ``phone_number_id``; False if there was none."""
        return self._write_numbers((), [number_or_id]) > 0

    def sync_numbers(self, upserts: Sequence[NumberRecord], deletes: Iterable[str]) -> None:
        """Apply a routing sync in one transaction: all of it or nothing.

        Records are stored as given (their ``updated_at`` is kept).
        """
        self._write_numbers([validate_number(r) for r in upserts], list(deletes))

    def _write_numbers(self, upserts: Sequence[NumberRecord], deletes: Sequence[str]) -> int:
        # The other instances learn of the change from the event committed with it
        # (bridge.store.bus): they re-read these numbers into their routing tables.
        keys = [r.number for r in upserts] + list(deletes)
        if not keys:
            return 0
        event = (
            RoutingChanged(keys=tuple(keys))
            if len(keys) <= _ROUTING_EVENT_KEYS
            else RoutingChanged(everything=True)
        )
        also = publish_statements(ROUTING_CHANGED, event, self.instance, postgres=self.postgres)
        return self._db.write_numbers(upserts, deletes, also)

    # -- other tables (instances, the event bus) ---------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only statement (``?`` marks).  Blocking: off the event loop."""
        return self._db.query(sql, params)

    def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run statements in one transaction; their row counts.  Blocking, like number
        writes; StoreError when the database cannot."""
        return self._db.write(statements)

    # -- call records: writes (never block) -----------------------------------------

    def record_call(self, rec: CallRecord) -> bool:
        """Queue the whole record (insert or replace).  Returns at once.

        False if it was dropped because the queue is full (counted and logged).
        """
        rec = validate_call(rec)
        if rec.stream_sid and rec.instance is None:
            rec = msgspec.structs.replace(rec, instance=self.instance)
        queued = self._writer.submit(rec.call_sid, record=rec)
        if queued:
            self._remember(rec)
        return queued

    def update_call(self, call_sid: str, **fields: Any) -> bool:
        """Queue a partial update of a recorded call.  Returns at once.

        Unknown field names or wrongly typed values raise InputError naming the field.
        """
        if not call_sid:
            raise InputError("call_sid", "must not be empty")
        valid = validate_call_fields(fields)
        if valid.get("stream_sid") and "instance" not in valid:
            valid["instance"] = self.instance  # the stream starts here
        queued = self._writer.submit(call_sid, fields=valid)
        if queued:
            with self._known_lock:
                known = self._known.get(call_sid)
                if known is not None:
                    self._known[call_sid] = msgspec.structs.replace(known, **valid)
        return queued

    def prune_calls(self, ended_before: float) -> int:
        """Delete records of calls that ended before ``ended_before``; returns how many."""
        return self._db.prune_calls(ended_before)

    # -- shared state of the deployment (bridge.store.slots, claims, rates) ---------

    def atomic(self, fn: Callable[[Tx], T], *, lock: int, timeout_s: float) -> T:
        """``fn`` in one write transaction, serialised per ``lock`` across every process
        sharing the database (:meth:`bridge.store.backend.Backend.atomic`).  Blocking."""
        return self._db.atomic(fn, lock=lock, timeout_s=timeout_s)

    # -- call records: reads ---------------------------------------------------------

    def get_call(self, call_sid: str) -> CallRecord | None:
        # Pending first, then the row: a write that lands in between is then in the row.
        pending = self._writer.pending_for(call_sid)
        if pending is not None and pending.record is not None:
            return pending.record
        try:
            rs = self._db.query(
                f"SELECT {rows.CALL_COLUMNS} FROM calls WHERE call_sid = ?",
                (call_sid,),
            )
        except StoreError:
            # The database cannot answer (server down): this instance's own last view
            # of the call, if it has one, rather than no answer — the status callback
            # at a call's end must still be able to complete its record.
            with self._known_lock:
                known = self._known.get(call_sid)
            if known is None:
                raise
            return known
        row = rows.row_to_call(rs[0]) if rs else None
        rec = pending.apply_to(row) if pending is not None else row
        if rec is not None:
            self._remember(rec)
        return rec

    def _remember(self, rec: CallRecord) -> None:
        with self._known_lock:
            self._known[rec.call_sid] = rec
            self._known.move_to_end(rec.call_sid)
            while len(self._known) > KNOWN_CALLS:
                self._known.popitem(last=False)

    def list_calls(
        self,
        *,
        live: bool | None = None,
        number: str | None = None,
        agent_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> CallPage:
        """Newest first.  ``live``: only calls in progress (True) or finished (False);
        ``number``: calls to or from it; ``cursor``: ``next_cursor`` of the previous page.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InputError("limit", f"must be 1-{MAX_PAGE}, got {limit}")
        after = _decode_cursor(cursor) if cursor is not None else None
        pending = self._writer.pending_snapshot()
        where, params = _call_filter(live, number, agent_id, after)
        if live is True:
            # Not the calls of an instance known to be gone: stopped, or silent past the
            # grace period (its sweep closes them; until then they are not live here).
            where += (" AND" if where else " WHERE") + (
                " (instance IS NULL OR instance NOT IN (SELECT id FROM instances"
                " WHERE state <> 'running' OR last_seen < ?))"
            )
            params.append(time.time() - self.instance_grace_s)
        # Up to len(pending) fetched rows may be superseded by pending state and drop
        # out of the filter; fetching that many more keeps the page full.
        sql = (
            f"SELECT {rows.LIST_CALL_COLUMNS} FROM calls{where} "
            "ORDER BY started_at DESC, call_sid DESC LIMIT ?"
        )
        found = {
            r.call_sid: r
            for r in map(rows.row_to_call, self._db.query(sql, (*params, limit + 1 + len(pending))))
            if r.call_sid not in pending
        }
        if pending:
            partial = [sid for sid, p in pending.items() if p.record is None]
            base = {r.call_sid: r for r in self._calls_by_sid(partial)}
            for sid, p in pending.items():
                rec = p.apply_to(base.get(sid))
                if rec is not None and _matches(rec, live, number, agent_id, after):
                    found[sid] = rec
        items = sorted(found.values(), key=lambda r: (r.started_at, r.call_sid), reverse=True)
        page = [
            msgspec.structs.replace(r, transcript=()) if r.transcript else r for r in items[:limit]
        ]
        next_cursor = _encode_cursor(page[-1]) if len(items) > limit else None
        return CallPage(items=page, next_cursor=next_cursor)

    # -- webhook deliveries (bridge.webhooks; synchronous, never on the audio path) -----

    def enqueue_deliveries(self, items: Sequence[deliveries.NewDelivery]) -> int:
        """Queue post-call webhook deliveries; returns how many were new."""
        return deliveries.enqueue(self._db, items)

    def due_deliveries(self, now: float, limit: int = 100) -> list[deliveries.DueDelivery]:
        return deliveries.due(self._db, now, limit)

    def claim_delivery(self, d: deliveries.DueDelivery, now: float, lease_until: float) -> bool:
        """Take a due delivery for one attempt; False if another instance took it."""
        return deliveries.claim(self._db, d, now, lease_until)

    def finish_delivery(
        self,
        d: deliveries.DueDelivery,
        *,
        state: deliveries.DeliveryState,
        next_attempt_at: float,
        status: int | None = None,
        error: str | None = None,
        delivered_at: float | None = None,
    ) -> bool:
        """Record the outcome of the attempt claimed from ``d``."""
        return deliveries.finish(
            self._db,
            d,
            state=state,
            next_attempt_at=next_attempt_at,
            status=status,
            error=error,
            delivered_at=delivered_at,
        )

    def get_delivery(self, delivery_id: str) -> deliveries.DeliveryRecord | None:
        return deliveries.get(self._db, delivery_id)

    def delivery_payload(self, delivery_id: str) -> str | None:
        return deliveries.payload(self._db, delivery_id)

    def retry_delivery(self, delivery_id: str) -> deliveries.DeliveryRecord | None:
        """Make a delivery due now, whatever its state; None if there is no such id."""
        return deliveries.retry(self._db, delivery_id, time.time())

    def list_deliveries(
        self,
        *,
        state: deliveries.DeliveryState | None = None,
        call_sid: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> deliveries.DeliveryPage:
        """Newest first; ``cursor``: ``next_cursor`` of the previous page."""
        if not 1 <= limit <= MAX_PAGE:
            raise InputError("limit", f"must be 1-{MAX_PAGE}, got {limit}")
        return deliveries.list_page(
            self._db, state=state, call_sid=call_sid, limit=limit, cursor=cursor
        )

    def _calls_by_sid(self, sids: Sequence[str]) -> list[CallRecord]:
        out: list[CallRecord] = []
        for i in range(0, len(sids), _SQL_CHUNK):
            chunk = sids[i : i + _SQL_CHUNK]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT {rows.CALL_COLUMNS} FROM calls WHERE call_sid IN ({marks})"
            out.extend(map(rows.row_to_call, self._db.query(sql, chunk)))
        return out


def _call_filter(
    live: bool | None, number: str | None, agent_id: str | None, after: tuple[float, str] | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if live is True:
        clauses.append(f"status IN ({_LIVE_SQL})")
    elif live is False:
        clauses.append(f"status NOT IN ({_LIVE_SQL})")
    if number is not None:
        clauses.append("(to_number = ? OR from_number = ?)")
        params += [number, number]
    if agent_id is not None:
        clauses.append("agent_id = ?")
        params.append(agent_id)
    if after is not None:
        clauses.append("(started_at < ? OR (started_at = ? AND call_sid < ?))")
        params += [after[0], after[0], after[1]]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _matches(
    rec: CallRecord,
    live: bool | None,
    number: str | None,
    agent_id: str | None,
    after: tuple[float, str] | None,
) -> bool:
    """The Python twin of :func:`_call_filter`, for records not in the database yet."""
    if live is not None and rec.live != live:
        return False
    if number is not None and number not in (rec.to_number, rec.from_number):
        return False
    if agent_id is not None and rec.agent_id != agent_id:
        return False
    return after is None or (rec.started_at, rec.call_sid) < after


def _encode_cursor(rec: CallRecord) -> str:
    raw = msgspec.json.encode((rec.started_at, rec.call_sid))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return _cursor_decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InputError("cursor", "is not a cursor returned by this listing", status=400) from None
