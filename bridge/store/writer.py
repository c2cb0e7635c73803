"""The call-record writer: a dedicated thread that owns every call-record write.

Why a thread and a pending map rather than writing in place: a call's audio loop must
never wait on the database (a checkpoint, a backup holding the lock, a slow or full
disk, a PostgreSQL server restarting or unreachable).
``submit`` only touches memory under a lock that no I/O ever holds, so it returns in
microseconds whatever the database is doing.

The pending map *is* the queue.  It holds, per call SID, either the whole record
(``record_call``, later updates folded in) or the merged fields of updates to a row
already written.  A call that is updated a hundred times while the database is locked
therefore costs one entry and one row write, and the bound (``max_pending``) is a bound
on distinct calls waiting, not on events.  Reads overlay the map onto what the
database returns, which gives read-your-writes without waiting for the disk.

The writer knows no SQL: the backend (:mod:`bridge.store.sqlite`,
:mod:`bridge.store.postgres`) gives it a :class:`BatchConn` that writes one batch in
one transaction, and says which errors can be retried on the same connection.

Failure handling: a failed batch is rolled back and retried with exponential backoff;
the first failure of a streak logs ``store.write_failing`` at ERROR (the alarm) and the
first success after it ``store.write_recovered``.  Errors other than "busy/locked"
(as the backend judges) reopen the connection on the next try, so a replaced file, a
remounted volume or a restarted server is picked up.  When the map is full, new calls are dropped and counted
(``store.queue_overflow`` once per overflow streak, ``bridge_store_dropped_writes_total``).
Metrics go to the registry the app passes (:class:`StoreMetrics`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol, TypeAlias

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge

from bridge.errors import StoreError
from bridge.log import log_event
from bridge.store.records import CallRecord

logger = logging.getLogger("bridge.store")


class StoreMetrics:
    """The writer's Prometheus metrics, in the app's registry (a private one if None)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.pending_writes = Gauge(
            "bridge_store_pending_writes",
            "Call records with changes not yet written to the database",
            registry=r,
            multiprocess_mode="livesum",  # bridge serve --workers: summed over workers
        )
        self.write_failures = Counter(
            "bridge_store_write_failures",
            "Failed call-record write batches (each is retried)",
            registry=r,
        )
        self.dropped_writes = Counter(
            "bridge_store_dropped_writes",
            "Call-record writes dropped because the queue was full",
            registry=r,
        )


# (call SID, whole record or None, fields of a partial update, sequence number)
BatchItem: TypeAlias = tuple[str, CallRecord | None, dict[str, Any], int]


class BatchConn(Protocol):
    """The writer thread's connection, as a backend provides it."""

    def write_batch(self, batch: Sequence[BatchItem]) -> list[str]:
        """Write ``batch`` in one transaction (all or nothing); return the SIDs of
        partial updates that matched no row."""
        ...

    def retry_in_place(self, e: Exception) -> bool:
        """True if ``e`` is transient on this connection (busy, locked): keep it."""
        ...

    def close(self) -> None: ...


@dataclass
class PendingWrite:
    """Unwritten state of one call: the whole record, or fields for an existing row."""

    record: CallRecord | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    def apply_to(self, row: CallRecord | None) -> CallRecord | None:
        """What a reader should see, given the row the database has (or None)."""
        if self.record is not None:
            return self.record
        if row is None:
            return None
        return msgspec.structs.replace(row, **self.fields)


class CallWriter:
    def __init__(
        self,
        open_conn: Callable[[], BatchConn],
        *,
        db_label: str,
        max_pending: int = 100_000,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        linger_s: float = 0.01,
        batch_size: int = 500,
        metrics: StoreMetrics | None = None,
    ):
        self._open_conn = open_conn
        self._db_label = db_label
        self._max_pending = max_pending
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._linger_s = linger_s
        self._batch_size = batch_size
        self._metrics = metrics if metrics is not None else StoreMetrics()

        self._cond = threading.Condition(threading.Lock())
        self._pending: dict[str, PendingWrite] = {}
        self._seq = 0
        self._closing = False
        self._close_deadline = math.inf
        self._write_failures = 0
        self._streak = 0
        self._dropped = 0
        self._overflowing = False
        self._written = 0
        self._thread = threading.Thread(target=self._run, name="bridge-store-writer", daemon=True)
        self._thread.start()

    # -- producer side (any thread, never blocks on I/O) ---------------------------

    def submit(
        self, call_sid: str, record: CallRecord | None = None, fields: dict[str, Any] | None = None
    ) -> bool:
        """Queue a whole record or an update; False if dropped because the queue is full."""
        overflow_started = False
        with self._cond:
            if self._closing:
                raise StoreError("store is closed; call record not accepted")
            entry = self._pending.get(call_sid)
            if entry is None:
                if len(self._pending) >= self._max_pending:
                    self._dropped += 1
                    self._metrics.dropped_writes.inc()
                    overflow_started = not self._overflowing
                    self._overflowing = True
                    dropped = self._dropped
                else:
                    entry = self._pending[call_sid] = PendingWrite()
            if entry is not None:
                if record is not None:
                    entry.record, entry.fields = record, {}
                elif entry.record is not None:
                    entry.record = msgspec.structs.replace(entry.record, **(fields or {}))
                else:
                    entry.fields.update(fields or {})
                self._seq += 1
                entry.seq = self._seq
                self._metrics.pending_writes.set(len(self._pending))
                self._cond.notify()
                return True
        if overflow_started:
            log_event(
                logger,
                "store.queue_overflow",
                level=logging.ERROR,
                db=self._db_label,
                max_pending=self._max_pending,
                dropped_total=dropped,
            )
        return False

    def pending_for(self, call_sid: str) -> PendingWrite | None:
        with self._cond:
            entry = self._pending.get(call_sid)
            return None if entry is None else PendingWrite(entry.record, dict(entry.fields))

    def pending_snapshot(self) -> dict[str, PendingWrite]:
        with self._cond:
            return {sid: PendingWrite(e.record, dict(e.fields)) for sid, e in self._pending.items()}

    # -- state --------------------------------------------------------------------

    @property
    def pending_writes(self) -> int:
        """Calls whose latest changes are not in the database yet."""
        with self._cond:
            return len(self._pending)

    @property
    def write_failures(self) -> int:
        """Failed write attempts since start (each one was retried)."""
        with self._cond:
            return self._write_failures

    @property
    def dropped_writes(self) -> int:
        with self._cond:
            return self._dropped

    @property
    def healthy(self) -> bool:
        """False from a failed write until the next successful one, and while dropping."""
        with self._cond:
            return self._streak == 0 and not self._overflowing

    def flush(self, timeout_s: float) -> bool:
        """Wait (blocking) until everything queued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.notify_all()
                self._cond.wait(min(left, 0.05))
            return True

    def close(self, timeout_s: float) -> int:
        """Stop accepting, write what is queued (retrying up to ``timeout_s``), stop.

        Returns how many call records could not be written (also logged at ERROR).
        """
        with self._cond:
            if not self._closing:
                self._closing = True
                self._close_deadline = time.monotonic() + timeout_s
            self._cond.notify_all()
        # The thread may be inside one busy-wait or connect; give it that long to notice.
        self._thread.join(timeout_s + 5.0)
        with self._cond:
            lost = len(self._pending)
        if lost:
            log_event(
                logger,
                "store.close_unwritten",
                level=logging.ERROR,
                db=self._db_label,
                unwritten=lost,
            )
        return lost

    # -- the writer thread -------------------------------------------------------

    def _run(self) -> None:
        conn: BatchConn | None = None
        delay = self._retry_initial_s
        retry_at = 0.0
        streak_started = 0.0
        while True:
            with self._cond:
                if not self._wait_for_work(retry_at):
                    break
                batch = [
                    (sid, e.record, dict(e.fields), e.seq)
                    for sid, e in islice(self._pending.items(), self._batch_size)
                ]
            try:
                if conn is None:
                    conn = self._open_conn()
                unknown = conn.write_batch(batch)
            except Exception as e:  # any failure: keep the queue, retry later
                if conn is not None and not conn.retry_in_place(e):
                    _close_quietly(conn)
                    conn = None
                with self._cond:
                    self._write_failures += 1
                    self._streak += 1
                    first = self._streak == 1
                    pending = len(self._pending)
                self._metrics.write_failures.inc()
                if first:
                    streak_started = time.monotonic()
                    log_event(
                        logger,
                        "store.write_failing",
                        level=logging.ERROR,
                        db=self._db_label,
                        error=f"{type(e).__name__}: {e}",
                        pending=pending,
                        note="calls continue; call records are queued and retried",
                    )
                retry_at = time.monotonic() + delay
                delay = min(delay * 2, self._retry_max_s)
                continue
            # Log before releasing the batch: whoever flush()es then sees these lines.
            for sid in unknown:
                log_event(logger, "store.update_unknown_call", level=logging.WARNING, call_sid=sid)
            with self._cond:
                streak = self._streak  # only this thread changes it
                pending_before = len(self._pending)
            if streak:
                log_event(
                    logger,
                    "store.write_recovered",
                    db=self._db_label,
                    failed_attempts=streak,
                    down_s=round(time.monotonic() - streak_started, 3),
                    pending=pending_before - len(batch),
                )
            with self._cond:
                for sid, _record, _fields, seq in batch:
                    entry = self._pending.get(sid)
                    if entry is None:
                        continue
                    if entry.seq == seq:
                        del self._pending[sid]
                    else:
                        # Changed meanwhile: to the back of the line, so calls that are
                        # updated constantly cannot starve the rest of a long queue.
                        self._pending[sid] = self._pending.pop(sid)
                self._written += len(batch)
                self._streak = 0
                if self._overflowing and len(self._pending) < self._max_pending:
                    self._overflowing = False
                self._metrics.pending_writes.set(len(self._pending))
                self._cond.notify_all()
            delay, retry_at = self._retry_initial_s, 0.0
        if conn is not None:
            _close_quietly(conn)
        with self._cond:
            self._cond.notify_all()

    def _wait_for_work(self, retry_at: float) -> bool:
        """Under the lock: wait until a batch is due; False when the thread should stop."""
        lingered = False
        while True:
            now = time.monotonic()
            if self._closing and (not self._pending or now >= self._close_deadline):
                return False
            if self._pending and now >= retry_at:
                # Let a burst of submissions gather into one transaction.
                if lingered or self._closing or self._streak or self._linger_s <= 0:
                    return True
                lingered = True
                self._cond.wait(self._linger_s)
                continue
            wait = retry_at - now if self._pending else None
            if self._closing:
                wait = min(wait if wait is not None else math.inf, self._close_deadline - now)
            self._cond.wait(wait)


def _close_quietly(conn: BatchConn) -> None:
    try:
        conn.close()
    except Exception as e:  # a broken connection may fail to close; it is gone anyway
        log_event(logger, "store.writer_close_failed", logging.WARNING, error=str(e))
