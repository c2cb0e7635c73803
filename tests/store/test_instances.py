"""Instances sharing a store (bridge/store/instances.py), on SQLite and PostgreSQL:
registration, heartbeats, the sweep of dead instances and the live-call listing.

Times are passed in (``now=``), so the grace period is exercised without waiting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.store import CallRecord, Store
from bridge.store.instances import INSTANCE_LOST, Instances, Lost

GRACE = 30.0
T0 = 1_000_000.0


@pytest.fixture
def stores(db: str) -> Iterator[tuple[Store, Store, Store]]:
    made = [Store(db, linger_s=0, instance=n, instance_grace_s=GRACE) for n in "abc"]
    yield made[0], made[1], made[2]
    for s in made:
        s.close()


def reg(store: Store) -> Instances:
    return Instances(store, instance_id=store.instance, grace_s=GRACE, version="1.0")


def live_call(store: Store, sid: str, answered_at: float = T0 + 1) -> None:
    store.record_call(
        CallRecord(
            call_sid=sid,
            stream_sid="MZ" + sid,
            status="in-progress",
            started_at=T0,
            answered_at=answered_at,
        )
    )
    assert store.flush()


def test_instances_register_heartbeat_and_stop(stores: tuple[Store, Store, Store]) -> None:
    a, b, _ = stores
    ia, ib = reg(a), reg(b)
    assert ia.register(now=T0) == 0
    ib.register(now=T0)
    ib.heartbeat(live_calls=3, now=T0 + 5)
    listed = ia.list(now=T0 + 10)
    assert [i.id for i in listed] == ["a", "b"]  # this instance first
    b_info = listed[1]
    assert (b_info.state, b_info.live_calls, b_info.last_seen, b_info.alive) == (
        "running",
        3,
        T0 + 5,
        True,
    )
    assert ia.alive("b", now=T0 + 10)
    assert not ia.alive("b", now=T0 + 5 + GRACE + 1)  # silent past the grace
    ib.stop(now=T0 + 12)
    assert not ia.alive("b", now=T0 + 13)
    assert [i.state for i in ia.list(now=T0 + 13)] == ["running", "stopped"]


def test_the_sweep_closes_the_live_calls_of_a_dead_instance_once(
    stores: tuple[Store, Store, Store],
) -> None:
    a, b, c = stores
    ia, ib, ic = reg(a), reg(b), reg(c)
    for i in (ia, ib, ic):
        i.register(now=T0)
    live_call(b, "CA_b1")
    live_call(b, "CA_b2", answered_at=T0 + 100)  # (a clock ahead: duration 0, not < 0)
    live_call(a, "CA_a1")
    ia.heartbeat(0, now=T0 + 40)
    ic.heartbeat(0, now=T0 + 40)
    # Within the grace nothing happens.
    assert ia.sweep(now=T0 + GRACE - 1) == []
    # Past it, a and c sweep; only one of them closes b's calls.
    first = ia.sweep(now=T0 + 50)
    second = ic.sweep(now=T0 + 50)
    assert first == [Lost("b", T0, 2)] and second == []
    b1, b2, a1 = (a.get_call(s) for s in ("CA_b1", "CA_b2", "CA_a1"))
    assert b1 is not None and b2 is not None and a1 is not None
    assert (b1.status, b1.end_reason, b1.ended_at, b1.duration_s) == (
        "completed",
        INSTANCE_LOST,
        T0 + 50,
        49.0,
    )
    assert b2.duration_s == 0.0
    assert a1.status == "in-progress"  # a's own call: a is alive
    assert [i.state for i in ia.list(now=T0 + 50)] == ["running", "lost", "running"]


def test_a_sweep_leaves_an_instance_that_heartbeats_alone(
    stores: tuple[Store, Store, Store],
) -> None:
    a, b, _ = stores
    ia, ib = reg(a), reg(b)
    ia.register(now=T0)
    ib.register(now=T0)
    live_call(b, "CA_b1")
    ib.heartbeat(1, now=T0 + 45)
    assert ia.sweep(now=T0 + 50) == []
    rec = a.get_call("CA_b1")
    assert rec is not None and rec.status == "in-progress"


def test_a_restart_under_the_same_id_closes_what_the_last_run_left(
    stores: tuple[Store, Store, Store],
) -> None:
    a, b, _ = stores
    ib = reg(b)
    ib.register(now=T0)
    live_call(b, "CA_old")
    # Killed, then started again before anyone swept it: its old call is gone with it.
    assert reg(b).register(now=T0 + 5) == 1
    rec = a.get_call("CA_old")
    assert rec is not None and (rec.status, rec.end_reason) == ("completed", INSTANCE_LOST)
    # After a clean stop, a restart closes nothing (nothing was left in progress).
    live_call(b, "CA_new")
    ib.stop(now=T0 + 6)
    assert reg(b).register(now=T0 + 7) == 0


def test_live_listing_leaves_out_the_calls_of_instances_known_gone(
    stores: tuple[Store, Store, Store],
) -> None:
    a, b, c = stores
    ia, ib = reg(a), reg(b)
    ia.register()
    ib.register()
    live_call(a, "CA_a")
    live_call(b, "CA_b")
    c.record_call(CallRecord(call_sid="CA_queued", status="queued", started_at=T0))  # no stream yet
    assert c.flush()
    assert {r.call_sid for r in a.list_calls(live=True).items} == {"CA_a", "CA_b", "CA_queued"}
    assert {r.instance for r in a.list_calls(live=True).items} == {"a", "b", None}
    ib.stop()
    assert {r.call_sid for r in a.list_calls(live=True).items} == {"CA_a", "CA_queued"}
    # Unfiltered listings still show every record.
    assert len(a.list_calls().items) == 3


def test_the_sweep_gives_a_dead_instance_call_ended_without_a_reason_one(
    stores: tuple[Store, Store, Store],
) -> None:
    a, b, _ = stores
    ia, ib = reg(a), reg(b)
    ia.register(now=T0)
    ib.register(now=T0)
    # Twilio's status callback (on another instance) ended it; its owner died before
    # recording why.
    b.record_call(
        CallRecord(
            call_sid="CA_done", stream_sid="MZ", status="completed", started_at=T0, ended_at=T0 + 9
        )
    )
    live_call(b, "CA_reasoned")
    b.update_call("CA_reasoned", status="completed", end_reason="caller_hangup")
    assert b.flush()
    ia.heartbeat(0, now=T0 + 50)
    assert ia.sweep(now=T0 + 50) == [Lost("b", T0, 1)]
    done, reasoned = a.get_call("CA_done"), a.get_call("CA_reasoned")
    assert done is not None and reasoned is not None
    assert (done.status, done.end_reason, done.ended_at) == ("completed", INSTANCE_LOST, T0 + 9)
    assert reasoned.end_reason == "caller_hangup"  # its own reason stays
