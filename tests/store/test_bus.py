"""The event bus between instances (bridge/store/bus.py), on SQLite and PostgreSQL.

Two :class:`Store` objects on one database play two instances.  Waits are bounded
waits for an event, never timing assertions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import msgspec
import psycopg
import pytest

from bridge.errors import InputError
from bridge.store import NumberRecord, Store
from bridge.store.bus import (
    CALL_HANGUP,
    ROUTING_CHANGED,
    CallHangup,
    Cursor,
    Event,
    EventBus,
    RoutingChanged,
)


async def until(pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def ev(i: int, kind: str = "k") -> Event:
    return Event(i, kind, b"{}", "a", 0.0)


# -- the pure core ------------------------------------------------------------------------


def test_cursor_delivers_each_event_once_in_id_order() -> None:
    c = Cursor(10)
    assert [e.id for e in c.take([ev(12), ev(11)], now=0)] == [11, 12]
    assert c.take([ev(11), ev(12)], now=1) == []  # re-read: nothing new
    assert c.last == 12
    assert c.take([ev(9)], now=1) == []  # before the start: not ours


def test_cursor_asks_again_for_ids_skipped_over_until_they_commit() -> None:
    c = Cursor(0, gap_wait_s=10)
    assert [e.id for e in c.take([ev(1), ev(4)], now=0)] == [1, 4]
    assert c.gaps(now=1) == [2, 3]
    assert [e.id for e in c.take([ev(3)], now=2)] == [3]  # a late commit, delivered once
    assert c.gaps(now=2) == [2]
    assert c.take([ev(3)], now=3) == []
    assert c.gaps(now=11) == []  # never committed (rolled back): given up


def test_cursor_bounds_the_ids_it_waits_for() -> None:
    c = Cursor(0, max_gaps=5)
    c.take([ev(1_000_000)], now=0)
    assert c.gaps(now=0) == [999_995, 999_996, 999_997, 999_998, 999_999]


# -- publish and follow -------------------------------------------------------------------


@pytest.fixture
async def two(db: str) -> AsyncIterator[tuple[Store, Store]]:
    a = Store(db, linger_s=0, instance="a")
    b = Store(db, linger_s=0, instance="b")
    yield a, b
    b.close()
    a.close()


def bus_of(store: Store, **kw: object) -> EventBus:
    return EventBus(store, origin=store.instance, poll_interval_s=0.05, **kw)  # type: ignore[arg-type]


async def test_an_event_published_by_one_instance_reaches_the_other(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    bus_a, bus_b = bus_of(a), bus_of(b)
    got_b: list[tuple[CallHangup, Event]] = []
    got_a: list[CallHangup] = []

    async def on_b(p: CallHangup, e: Event) -> None:
        got_b.append((p, e))

    async def on_a(p: CallHangup, e: Event) -> None:
        got_a.append(p)

    bus_b.subscribe(CALL_HANGUP, CallHangup, on_b)
    bus_a.subscribe(CALL_HANGUP, CallHangup, on_a)
    await bus_a.start()
    await bus_b.start()
    try:
        await bus_a.publish(CALL_HANGUP, CallHangup(call_sid="CA1", instance="b"))
        await until(lambda: len(got_b) == 1)
        payload, event = got_b[0]
        assert payload == CallHangup(call_sid="CA1", instance="b")
        assert (event.kind, event.origin) == (CALL_HANGUP, "a")
        await until(lambda: bus_a.delivered == 1)
        assert got_a == []  # the publisher's own subscribers skip its own events
    finally:
        await bus_a.stop()
        await bus_b.stop()


async def test_own_events_on_request_and_only_events_after_start(
    two: tuple[Store, Store],
) -> None:
    a, _ = two
    early = EventBus(a, origin="a")
    await early.start()
    await early.publish("test.kind", CallHangup(call_sid="CA0"))  # before bus starts
    await early.stop()
    bus = bus_of(a)
    got: list[str] = []

    async def on(p: CallHangup, e: Event) -> None:
        got.append(p.call_sid)

    bus.subscribe("test.kind", CallHangup, on, own=True)
    await bus.start()
    try:
        await bus.publish("test.kind", CallHangup(call_sid="CA1"))
        await until(lambda: got == ["CA1"])
    finally:
        await bus.stop()


async def test_a_handler_that_fails_does_not_stop_the_bus(two: tuple[Store, Store]) -> None:
    a, b = two
    bus_b = bus_of(b)
    got: list[str] = []

    async def on(p: CallHangup, e: Event) -> None:
        if p.call_sid == "bad":
            raise RuntimeError("boom")
        got.append(p.call_sid)

    bus_b.subscribe(CALL_HANGUP, CallHangup, on)
    await bus_b.start()
    try:
        bus_a = EventBus(a, origin="a")
        await bus_a.publish(CALL_HANGUP, CallHangup(call_sid="bad"))
        await bus_a.publish(CALL_HANGUP, CallHangup(call_sid="good"))
        await until(lambda: got == ["good"])
    finally:
        await bus_b.stop()


async def test_number_writes_publish_their_routing_event_in_the_same_transaction(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    bus_b = bus_of(b)
    got: list[RoutingChanged] = []

    async def on(p: RoutingChanged, e: Event) -> None:
        got.append(p)

    bus_b.subscribe(ROUTING_CHANGED, RoutingChanged, on)
    await bus_b.start()
    try:
        a.upsert_number(NumberRecord(number="+15550001111", phone_number_id="pn1", agent_id="x"))
        await until(lambda: len(got) == 1)
        assert got[0] == RoutingChanged(keys=("+15550001111",))
        # A write that fails (the id belongs to another number) publishes nothing.
        with pytest.raises(InputError):
            a.upsert_number(NumberRecord(number="+15550002222", phone_number_id="pn1"))
        assert a.delete_number("pn1")
        await until(lambda: len(got) == 2)
        assert got[1] == RoutingChanged(keys=("pn1",))
        kinds = [r[0] for r in a.query("SELECT kind FROM bus_events ORDER BY id")]
        assert kinds == [ROUTING_CHANGED, ROUTING_CHANGED]
        # A large sync names no numbers: "re-read everything".
        a.sync_numbers([NumberRecord(number=f"+1555100{i:04d}") for i in range(150)], [])
        await until(lambda: len(got) == 3)
        assert got[2] == RoutingChanged(everything=True)
    finally:
        await bus_b.stop()


async def test_old_events_are_pruned(two: tuple[Store, Store]) -> None:
    a, _ = two
    a.write(
        [
            (
                "INSERT INTO bus_events (kind, payload, origin, created_at) VALUES (?, ?, ?, ?)",
                ("old", "{}", "x", time.time() - 7200),
            )
        ]
    )
    bus = bus_of(a, retention_s=3600.0)
    await bus.start()
    try:
        await until(lambda: a.query("SELECT COUNT(*) FROM bus_events")[0][0] == 0)
    finally:
        await bus.stop()


# -- PostgreSQL: LISTEN/NOTIFY and commits out of id order -----------------------------------


@pytest.fixture
async def pg_two(postgres_dsn: str) -> AsyncIterator[tuple[Store, Store]]:
    a = Store(postgres_dsn, linger_s=0, instance="a")
    b = Store(postgres_dsn, linger_s=0, instance="b")
    yield a, b
    b.close()
    a.close()


async def test_postgres_notify_wakes_the_follower_between_polls(
    pg_two: tuple[Store, Store], postgres_dsn: str
) -> None:
    a, b = pg_two
    # A poll interval far longer than the wait below: only the notification can explain
    # a delivery within it.
    bus_b = EventBus(b, origin="b", poll_interval_s=10.0, listen_dsn=postgres_dsn)
    got: list[str] = []

    async def on(p: CallHangup, e: Event) -> None:
        got.append(p.call_sid)

    bus_b.subscribe(CALL_HANGUP, CallHangup, on)
    await bus_b.start()
    try:
        await until(lambda: bus_b.listening)
        await asyncio.sleep(0.2)  # the wake-up LISTEN itself triggers is consumed
        await EventBus(a, origin="a").publish(CALL_HANGUP, CallHangup(call_sid="CA9"))
        await until(lambda: got == ["CA9"], timeout_s=5.0)
    finally:
        await bus_b.stop()


async def test_postgres_an_event_committed_after_a_higher_id_is_still_delivered(
    pg_two: tuple[Store, Store], postgres_dsn: str
) -> None:
    _, b = pg_two
    bus_b = bus_of(b)
    got: list[str] = []

    async def on(p: CallHangup, e: Event) -> None:
        got.append(p.call_sid)

    bus_b.subscribe(CALL_HANGUP, CallHangup, on)
    await bus_b.start()
    insert = "INSERT INTO bus_events (kind, payload, origin, created_at) VALUES (%s, %s, 'a', %s)"
    slow = psycopg.connect(postgres_dsn)  # a transaction: takes an id, commits later
    try:
        slow.execute(
            insert,
            (CALL_HANGUP, msgspec.json.encode(CallHangup(call_sid="first")).decode(), time.time()),
        )
        with psycopg.connect(postgres_dsn, autocommit=True) as fast:
            fast.execute(
                insert,
                (
                    CALL_HANGUP,
                    msgspec.json.encode(CallHangup(call_sid="second")).decode(),
                    time.time(),
                ),
            )
        await until(lambda: got == ["second"])
        slow.commit()
        await until(lambda: got == ["second", "first"])
        await asyncio.sleep(0.3)  # several more polls: still delivered once
        assert got == ["second", "first"]
    finally:
        slow.close()
        await bus_b.stop()
