"""The event bus between bridge instances: typed publish/subscribe over the shared store.

Every instance sharing a store (PostgreSQL, or one SQLite file in WAL mode shared by the
worker processes of one host) sees the events the others publish: a routing change, a
"hang up this call" from another instance's admin API.  The **table is the truth**:
``bus_events`` is an append-only log (id, kind, JSON payload, origin instance,
created_at), pruned after ``store.bus_retention_s``.  Each instance follows it from the
last id that existed when it started, so it acts on what happens from then on.

* :meth:`EventBus.publish` appends one row (in its own transaction);
  :func:`publish_statements` gives the statements to put an event in the transaction of
  the change it announces (the store's number writes do so: a routing change and its
  event commit together or not at all).
* Reading is a single indexed query, ``id > last``, run off the event loop.  It runs
  every ``store.bus_poll_interval_s`` and at once when woken: on PostgreSQL a dedicated
  connection LISTENs on :data:`CHANNEL` and every publish NOTIFYs it.  A notification is
  only a wake-up, so nothing is lost while that connection is down (it reconnects with
  backoff and reads the table once it is back).
* Ids are assigned when a row is inserted but become visible when its transaction
  commits, and on PostgreSQL two publishers can commit out of id order.  :class:`Cursor`
  (the pure core) remembers the ids it skipped and asks for them again for
  :data:`GAP_WAIT_S`, so a late commit is still delivered, once.

Subscribers: ``bus.subscribe(kind, PayloadType, handler)``; ``handler(payload, event)``
is awaited on the event loop, one event at a time, in id order.  Events an instance
published itself are not delivered back to it unless the subscriber asks (``own=True``):
the publisher has already acted on its own change.  A handler that raises is logged and
the bus goes on.  The bus is never on a call's path: publishing is an admin action and
delivery runs in its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from bridge.errors import StoreError
from bridge.log import log_event

if TYPE_CHECKING:
    from bridge.store.store import Store

logger = logging.getLogger("bridge.store.bus")

CHANNEL: Final = "bridge_bus"  # PostgreSQL LISTEN/NOTIFY channel
GAP_WAIT_S: Final = 10.0  # how long an id skipped over may still commit
MAX_GAPS: Final = 1000
BATCH: Final = 500  # events read per query
PRUNE_EVERY_S: Final = 60.0
LISTEN_BACKOFF_S: Final = (0.2, 5.0)  # first and longest wait before reconnecting
MAX_PAYLOAD_BYTES: Final = 64 * 1024

Statement = tuple[str, Sequence[Any]]
P = TypeVar("P", bound=msgspec.Struct)

# -- the kinds of event and their payloads ---------------------------------------------

ROUTING_CHANGED: Final = "routing.changed"
CALL_HANGUP: Final = "call.hangup"


class RoutingChanged(msgspec.Struct, frozen=True, kw_only=True):
    """Numbers were written: re-read ``keys`` (numbers or phone_number_ids), or the
    whole table when ``everything``."""

    keys: tuple[str, ...] = ()
    everything: bool = False


CALL_TRANSFER: Final = "call.transfer"


class CallTransfer(msgspec.Struct, frozen=True, kw_only=True):
    """Hand ``call_sid`` to ``number`` (E.164 or SIP URI), wherever it is live: the owner
    ends its stream with a transfer (``<Dial>``), its agent socket closed at once."""

    call_sid: str
    number: str
    caller_id: str | None = None
    timeout_s: int | None = None
    instance: str | None = None


class CallHangup(msgspec.Struct, frozen=True, kw_only=True):
    """End ``call_sid`` at once, wherever it is live (``instance``: its owner if known)."""

    call_sid: str
    instance: str | None = None


class Event(msgspec.Struct, frozen=True):
    """One row of ``bus_events``; ``payload`` is the JSON the publisher encoded."""

    id: int
    kind: str
    payload: bytes
    origin: str
    created_at: float


# -- SQL -------------------------------------------------------------------------------

_INSERT: Final = "INSERT INTO bus_events (kind, payload, origin, created_at) VALUES (?, ?, ?, ?)"
_NOTIFY: Final = "SELECT pg_notify(?, '')"
_COLUMNS: Final = "id, kind, payload, origin, created_at"
_AFTER: Final = f"SELECT {_COLUMNS} FROM bus_events WHERE id > ? ORDER BY id LIMIT {BATCH}"
_LAST_ID: Final = "SELECT COALESCE(MAX(id), 0) FROM bus_events"
_PRUNE: Final = "DELETE FROM bus_events WHERE created_at < ?"
_encode = msgspec.json.Encoder().encode


def publish_statements(
    kind: str, payload: msgspec.Struct, origin: str, *, postgres: bool
) -> list[Statement]:
    """The statements that publish an event inside a caller's transaction."""
    raw = _encode(payload).decode()
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise StoreError(f"bus event {kind} is {len(raw)} bytes (at most {MAX_PAYLOAD_BYTES})")
    out: list[Statement] = [(_INSERT, (kind, raw, origin, time.time()))]
    if postgres:  # delivered to listeners when the transaction commits
        out.append((_NOTIFY, (CHANNEL,)))
    return out


def _row_event(row: tuple[Any, ...]) -> Event:
    payload = row[2].encode() if isinstance(row[2], str) else bytes(row[2])
    return Event(int(row[0]), str(row[1]), payload, str(row[3]), float(row[4]))


# -- the pure core: which rows are new -------------------------------------------------


class Cursor:
    """A follower's position in the log: the highest id seen and the ids skipped over.

    ``take(rows, now)`` returns the rows not delivered before, in id order, and records
    the ids between the previous highest and a new one as gaps (a transaction that
    took them may still commit).  ``gaps(now)`` lists those still worth asking for.
    """

    def __init__(self, last: int, *, gap_wait_s: float = GAP_WAIT_S, max_gaps: int = MAX_GAPS):
        self.last = last
        self._gap_wait_s = gap_wait_s
        self._max_gaps = max_gaps
        self._gaps: OrderedDict[int, float] = OrderedDict()  # id -> noticed at

    def gaps(self, now: float) -> list[int]:
        while self._gaps and next(iter(self._gaps.values())) < now - self._gap_wait_s:
            self._gaps.popitem(last=False)  # rolled back, or never coming
        return list(self._gaps)

    def take(self, events: Sequence[Event], now: float) -> list[Event]:
        new: list[Event] = []
        for ev in sorted(events, key=lambda e: e.id):
            if ev.id in self._gaps:
                del self._gaps[ev.id]
            elif ev.id > self.last:
                for missing in range(max(self.last + 1, ev.id - self._max_gaps), ev.id):
                    self._gaps[missing] = now
                while len(self._gaps) > self._max_gaps:
                    self._gaps.popitem(last=False)
                self.last = ev.id
            else:
                continue  # delivered already
            new.append(ev)
        return new


# -- the bus -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subscription:
    payload_type: type[Any]
    handler: Callable[[Any, Event], Awaitable[None]]
    own: bool


class EventBus:
    """Publish to and follow the ``bus_events`` log of ``store`` as instance ``origin``.

    Use from one event loop: :meth:`start` begins following, :meth:`stop` ends it.
    ``listen_dsn``: a PostgreSQL DSN to LISTEN on for immediate wake-ups (None: poll only).
    """

    def __init__(
        self,
        store: Store,
        *,
        origin: str,
        poll_interval_s: float = 0.5,
        retention_s: float = 3600.0,
        listen_dsn: str | None = None,
    ):
        self._store = store
        self.origin = origin
        self._poll_interval_s = poll_interval_s
        self._retention_s = retention_s
        self._listen_dsn = listen_dsn
        self._subs: dict[str, list[_Subscription]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._cursor: Cursor | None = None
        self.delivered = 0  # events handed to subscribers since start
        self.listening = False  # a LISTEN connection is up (PostgreSQL)

    # -- API ---------------------------------------------------------------------------

    def subscribe(
        self,
        kind: str,
        payload_type: type[P],
        handler: Callable[[P, Event], Awaitable[None]],
        *,
        own: bool = False,
    ) -> None:
        """Deliver events of ``kind`` decoded as ``payload_type`` (``own``: also ours)."""
        self._subs.setdefault(kind, []).append(_Subscription(payload_type, handler, own))

    async def publish(self, kind: str, payload: msgspec.Struct) -> None:
        """Append an event (off the loop); StoreError if the store cannot write it."""
        statements = publish_statements(kind, payload, self.origin, postgres=self._store.postgres)
        await asyncio.to_thread(self._store.write, statements)
        self._wake.set()  # our own subscribers (own=True) need not wait for a poll

    @property
    def started(self) -> bool:
        return self._cursor is not None

    def wake(self) -> None:
        """Read the log now (a notification arrived, or a test knows there is news)."""
        self._wake.set()

    # -- lifetime ----------------------------------------------------------------------

    async def start(self) -> None:
        """Follow the log from its current end.  StoreError if the store cannot answer."""
        rows = await asyncio.to_thread(self._store.query, _LAST_ID)
        self._cursor = Cursor(int(rows[0][0]))
        self._tasks.append(asyncio.create_task(self._follow(), name="bus-follow"))
        if self._listen_dsn is not None:
            self._tasks.append(asyncio.create_task(self._listen(self._listen_dsn), name="bus-pg"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()

    # -- following ---------------------------------------------------------------------

    async def _follow(self) -> None:
        cursor = self._cursor
        assert cursor is not None
        next_prune = time.monotonic()
        failing = False
        while True:
            # (asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
            # cancellation that arrives as the wake-up completes, and stop() would hang.)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                events = await asyncio.to_thread(self._read, cursor)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                    cutoff = time.time() - self._retention_s
                    await asyncio.to_thread(self._store.write, [(_PRUNE, (cutoff,))])
            except StoreError as e:
                if not failing:
                    log_event(logger, "bus.read_failed", logging.WARNING, error=str(e))
                failing = True
                continue
            if failing:
                log_event(logger, "bus.read_recovered")
                failing = False
            for ev in events:
                await self._deliver(ev)
            if len(events) >= BATCH:
                self._wake.set()  # more to read

    def _read(self, cursor: Cursor) -> list[Event]:
        now = time.monotonic()
        rows = self._store.query(_AFTER, (cursor.last,))
        gaps = cursor.gaps(now)
        if gaps:
            marks = ", ".join("?" * len(gaps))
            rows += self._store.query(
                f"SELECT {_COLUMNS} FROM bus_events WHERE id IN ({marks})", gaps
            )
        return cursor.take([_row_event(r) for r in rows], now)

    async def _deliver(self, ev: Event) -> None:
        for sub in self._subs.get(ev.kind, ()):
            if ev.origin == self.origin and not sub.own:
                continue
            try:
                payload = msgspec.json.decode(ev.payload, type=sub.payload_type)
                await sub.handler(payload, ev)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one bad event or handler must not stop the bus
                log_event(
                    logger,
                    "bus.handler_failed",
                    logging.ERROR,
                    kind=ev.kind,
                    event_id=ev.id,
                    origin=ev.origin,
                    error=f"{type(e).__name__}: {e}",
                )
        self.delivered += 1

    # -- PostgreSQL wake-ups -------------------------------------------------------------

    async def _listen(self, dsn: str) -> None:
        # Imported here: SQLite users never load psycopg.
        import psycopg

        delay = LISTEN_BACKOFF_S[0]
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    dsn, autocommit=True, connect_timeout=3, application_name="bridge-bus"
                )
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    delay = LISTEN_BACKOFF_S[0]
                    log_event(logger, "bus.listening", channel=CHANNEL)
                    self._wake.set()  # anything published while we were away
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except psycopg.Error as e:
                log_event(
                    logger,
                    "bus.listen_failed",
                    logging.WARNING,
                    error=str(e).strip(),
                    retry_in_s=delay,
                    note="polling meanwhile",
                )
            finally:
                self.listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_BACKOFF_S[1])
