"""Webhook deliveries in the store, on SQLite and PostgreSQL: queue, claim, outcome, list."""

from __future__ import annotations

import pytest

from bridge.errors import InputError
from bridge.store import Store
from bridge.store.deliveries import DueDelivery, NewDelivery


def _new(did: str, sid: str = "CA1", url: str = "https://r.example/a", at: float = 100.0):
    return NewDelivery(
        id=did, call_sid=sid, url=url, payload='{"x":1}', created_at=at, retry_until=at + 60
    )


def test_enqueue_is_once_per_call_and_url(store: Store) -> None:
    assert store.enqueue_deliveries([_new("d1"), _new("d2", url="https://r.example/b")]) == 2
    # the same call and URL again (a hook fired twice, another instance): kept once
    assert store.enqueue_deliveries([_new("d3")]) == 0
    assert store.get_delivery("d3") is None
    d1 = store.get_delivery("d1")
    assert d1 is not None
    assert (d1.state, d1.attempts, d1.next_attempt_at, d1.retry_until) == (
        "pending",
        0,
        100.0,
        160.0,
    )
    assert store.delivery_payload("d1") == '{"x":1}'


def test_due_claim_finish(store: Store) -> None:
    store.enqueue_deliveries([_new("d1", at=100.0), _new("d2", sid="CA2", at=200.0)])
    assert [d.id for d in store.due_deliveries(now=150.0)] == ["d1"]
    (due,) = store.due_deliveries(now=150.0)
    assert due == DueDelivery(
        id="d1", url="https://r.example/a", payload='{"x":1}', attempts=0, retry_until=160.0
    )
    assert store.claim_delivery(due, now=150.0, lease_until=190.0)
    # claimed: not due until the lease ends, and the same read cannot claim it again
    assert store.due_deliveries(now=150.0) == []
    assert not store.claim_delivery(due, now=150.0, lease_until=190.0)
    claimed = store.get_delivery("d1")
    assert claimed is not None and claimed.attempts == 1 and claimed.next_attempt_at == 190.0

    assert store.finish_delivery(
        due, state="pending", next_attempt_at=155.0, status=500, error="HTTP 500"
    )
    again = store.get_delivery("d1")
    assert again is not None
    assert (again.state, again.last_status, again.last_error) == ("pending", 500, "HTTP 500")
    (due2,) = store.due_deliveries(now=156.0)
    assert due2.attempts == 1
    # a stale outcome (of attempt 1) cannot overwrite attempt 2's
    assert store.claim_delivery(due2, now=156.0, lease_until=200.0)
    assert not store.finish_delivery(due, state="failed", next_attempt_at=156.0)
    assert store.finish_delivery(
        due2, state="delivered", next_attempt_at=157.0, status=204, delivered_at=157.0
    )
    done = store.get_delivery("d1")
    assert done is not None
    assert (done.state, done.attempts, done.last_status, done.delivered_at) == (
        "delivered",
        2,
        204,
        157.0,
    )
    assert done.last_error is None
    assert [d.id for d in store.due_deliveries(now=1e12)] == ["d2"]


def test_claim_is_exclusive_between_two_instances(db: str) -> None:
    with Store(db, linger_s=0) as a, Store(db, linger_s=0) as b:
        a.enqueue_deliveries([_new(f"d{i}", sid=f"CA{i}") for i in range(20)])
        seen_a = a.due_deliveries(now=1000.0, limit=100)
        seen_b = b.due_deliveries(now=1000.0, limit=100)
        assert len(seen_a) == len(seen_b) == 20
        won_a = {d.id for d in seen_a if a.claim_delivery(d, now=1000.0, lease_until=2000.0)}
        won_b = {d.id for d in seen_b if b.claim_delivery(d, now=1000.0, lease_until=2000.0)}
        assert won_a and not (won_a & won_b) and won_a | won_b == {f"d{i}" for i in range(20)}


def test_retry_makes_any_delivery_due_now(store: Store) -> None:
    store.enqueue_deliveries([_new("d1", at=100.0)])
    (due,) = store.due_deliveries(now=100.0)
    store.claim_delivery(due, now=100.0, lease_until=130.0)
    store.finish_delivery(due, state="failed", next_attempt_at=170.0, status=500, error="HTTP 500")
    assert store.due_deliveries(now=1e12) == []
    rec = store.retry_delivery("d1")
    assert rec is not None and rec.state == "pending" and rec.attempts == 1
    # past its retry period it gets one more attempt: retry_until moves up to now
    assert rec.retry_until >= rec.next_attempt_at > 170.0
    assert [d.id for d in store.due_deliveries(now=rec.next_attempt_at)] == ["d1"]
    assert store.retry_delivery("nope") is None


def test_list_filters_and_pages(store: Store) -> None:
    store.enqueue_deliveries(
        [
            _new(f"d{i}", sid=f"CA{i % 2}", url=f"https://r.example/{i}", at=float(i))
            for i in range(5)
        ]
    )
    (due,) = [d for d in store.due_deliveries(now=10.0) if d.id == "d3"]
    store.claim_delivery(due, now=10.0, lease_until=20.0)
    store.finish_delivery(due, state="delivered", next_attempt_at=10.0, status=200)

    page = store.list_deliveries(limit=2)
    assert [d.id for d in page.items] == ["d4", "d3"] and page.next_cursor
    page2 = store.list_deliveries(limit=2, cursor=page.next_cursor)
    assert [d.id for d in page2.items] == ["d2", "d1"] and page2.next_cursor
    page3 = store.list_deliveries(limit=2, cursor=page2.next_cursor)
    assert [d.id for d in page3.items] == ["d0"] and page3.next_cursor is None

    assert [d.id for d in store.list_deliveries(state="delivered").items] == ["d3"]
    assert [d.id for d in store.list_deliveries(call_sid="CA0").items] == ["d4", "d2", "d0"]
    assert [d.id for d in store.list_deliveries(call_sid="CA1", state="pending").items] == ["d1"]

    with pytest.raises(InputError) as e:
        store.list_deliveries(cursor="not-a-cursor")
    assert e.value.field == "cursor"
    with pytest.raises(InputError):
        store.list_deliveries(limit=0)


def test_deliveries_survive_reopening(db: str) -> None:
    with Store(db, linger_s=0) as a:
        a.enqueue_deliveries([_new("d1")])
    with Store(db, linger_s=0) as b:
        rec = b.get_delivery("d1")
        assert rec is not None and rec.state == "pending"
