"""Deployment-wide limits in the store (slots, stream claims, rate windows), on both
backends; several ``Store`` objects on one database stand for several instances."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from bridge.store import Store, claims, rates
from bridge.store.slots import CallSlots, Caps

NOW = 1_800_000_000.0


@pytest.fixture
def other(db: str, store: Store) -> Iterator[Store]:
    """A second instance on the same database (opened after ``store`` migrated it)."""
    s = Store(db, linger_s=0, instance="b")
    yield s
    s.close()


def test_global_cap_holds_across_instances(store: Store, other: Store) -> None:
    a, b = CallSlots(store, instance="a"), CallSlots(other, instance="b")
    caps = Caps(total=2, per_number=0)
    assert a.reserve("CA1", "+1", caps, now=NOW, ttl_s=30) is None
    assert b.reserve("CA2", "+2", caps, now=NOW, ttl_s=30) is None
    assert b.reserve("CA3", "+3", caps, now=NOW, ttl_s=30) == "global"
    assert a.claim("CA4", "+4", caps, now=NOW, lease_s=60) == "global"  # no reservation
    assert a.held(now=NOW) == 2


def test_per_number_cap(store: Store, other: Store) -> None:
    a, b = CallSlots(store, instance="a"), CallSlots(other, instance="b")
    caps = Caps(total=0, per_number=1)
    assert a.reserve("CA1", "+1", caps, now=NOW, ttl_s=30) is None
    assert b.reserve("CA2", "+1", caps, now=NOW, ttl_s=30) == "number"
    assert b.reserve("CA3", "+2", caps, now=NOW, ttl_s=30) is None


def test_stream_claims_its_reservation_on_any_instance(store: Store, other: Store) -> None:
    a, b = CallSlots(store, instance="a"), CallSlots(other, instance="b")
    caps = Caps(total=1, per_number=0)
    assert a.reserve("CA1", "+1", caps, now=NOW, ttl_s=30) is None
    # The full cap does not refuse the stream of the call that holds the slot.
    assert b.claim("CA1", "+1", caps, now=NOW + 1, lease_s=60) is None
    assert b.held(now=NOW + 1) == 1
    # A retried webhook of the same call keeps its one slot.
    assert a.reserve("CA1", "+1", caps, now=NOW + 2, ttl_s=30) is None
    assert a.held(now=NOW + 2) == 1


def test_slots_expire_and_release(store: Store) -> None:
    a = CallSlots(store, instance="a")
    caps = Caps(total=1, per_number=0)
    assert a.reserve("CA1", "+1", caps, now=NOW, ttl_s=30) is None
    assert a.reserve("CA2", "+1", caps, now=NOW + 29, ttl_s=30) == "global"
    # A reservation whose stream never opened is gone after its time to live.
    assert a.reserve("CA2", "+1", caps, now=NOW + 30, ttl_s=30) is None
    assert a.claim("CA2", "+1", caps, now=NOW + 31, lease_s=60) is None
    # The owner renews its live calls' leases; a dead owner's slot expires.
    assert a.renew(["CA2"], now=NOW + 80, lease_s=60) == 1
    assert a.reserve("CA3", "+1", caps, now=NOW + 100, ttl_s=30) == "global"
    assert a.reserve("CA3", "+1", caps, now=NOW + 141, ttl_s=30) is None
    assert a.release(["CA3"]) == 1
    assert a.held(now=NOW + 141) == 0


def test_renew_touches_only_own_live_slots(store: Store, other: Store) -> None:
    a, b = CallSlots(store, instance="a"), CallSlots(other, instance="b")
    caps = Caps(total=0, per_number=0)
    assert a.claim("CA1", "+1", caps, now=NOW, lease_s=60) is None
    assert a.reserve("CA2", "+1", caps, now=NOW, ttl_s=30) is None
    assert b.renew(["CA1", "CA2"], now=NOW, lease_s=60) == 0
    assert a.renew(["CA1", "CA2"], now=NOW, lease_s=60) == 1


def test_simultaneous_reservations_never_overshoot(db: str, store: Store) -> None:
    """20 reservations at once from 4 instances (threads), cap 5: exactly 5 admitted."""
    instances = [Store(db, linger_s=0, instance=f"i{i}") for i in range(4)]
    caps = Caps(total=5, per_number=0)
    start = threading.Barrier(20)
    results: list[str | None] = []
    lock = threading.Lock()

    def webhook(i: int) -> None:
        slots = CallSlots(instances[i % 4], timeout_s=10.0)
        start.wait()
        scope = slots.reserve(f"CA{i}", "+1", caps, now=NOW, ttl_s=30)
        with lock:
            results.append(scope)

    try:
        threads = [threading.Thread(target=webhook, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 20
        assert results.count(None) == 5
        assert results.count("global") == 15
        assert CallSlots(store).held(now=NOW) == 5
    finally:
        for s in instances:
            s.close()


def test_stream_token_single_use_across_instances(store: Store, other: Store) -> None:
    kw = {"now": NOW, "timeout_s": 2.0, "expires_at": NOW + 60}
    assert claims.claim(store, "mac1", "CA1", **kw)
    assert not claims.claim(other, "mac1", "CA1", **kw)  # the same token, elsewhere
    assert not claims.claim(other, "mac2", "CA1", **kw)  # another token for the call
    assert not claims.claim(other, "mac1", "CA2", **kw)  # the token for another call
    assert claims.claim(other, "mac3", "CA3", **kw)
    # Past its expiry the row no longer counts, and pruning removes it.
    later = {"now": NOW + 61, "timeout_s": 2.0, "expires_at": NOW + 121}
    assert claims.claim(other, "mac1", "CA1", **later)
    assert claims.prune(store, now=NOW + 200, timeout_s=2.0) == 2


def test_token_digest_is_not_the_token(store: Store) -> None:
    assert claims.claim(store, "secret-mac", "CA1", expires_at=NOW + 60, now=NOW, timeout_s=2)
    stored = store.atomic(lambda t: t.rows("SELECT token FROM stream_claims"), lock=1, timeout_s=2)
    assert stored == [(claims.token_digest("secret-mac"),)]
    assert "secret-mac" not in stored[0][0]


def test_rate_limit_across_instances(store: Store, other: Store) -> None:
    """2 calls a second, burst 2: a token bucket shared by two instances."""
    kw = {"rate": 2.0, "burst": 2, "timeout_s": 2.0}
    assert rates.hit(store, "dial:+1", now=NOW, **kw).wait_s == 0
    assert rates.hit(other, "dial:+1", now=NOW, **kw).wait_s == 0
    refused = rates.hit(other, "dial:+1", now=NOW + 0.1, **kw)
    assert refused.wait_s == pytest.approx(0.4)  # the next token is due at NOW + 0.5
    assert rates.hit(store, "dial:+2", now=NOW + 0.1, **kw).wait_s == 0  # another scope
    assert rates.hit(store, "dial:+1", now=NOW + 0.5, **kw).wait_s == 0
    assert rates.hit(other, "dial:+1", now=NOW + 0.6, **kw).wait_s == pytest.approx(0.4)
    # No window boundary: however the calls fall, never more than burst + rate * t.
    admitted = sum(
        rates.hit(store, "dial:+3", now=NOW + k * 0.05, **kw).wait_s == 0 for k in range(40)
    )
    assert admitted == 2 + 3  # 2 at once, then one each 0.5 s over 1.95 s


def test_rate_refund_and_prune(store: Store) -> None:
    kw = {"rate": 1.0, "burst": 1, "timeout_s": 2.0}
    assert rates.hit(store, "dial:+1", now=NOW, **kw).wait_s == 0
    assert rates.hit(store, "dial:+1", now=NOW + 0.5, **kw).wait_s == pytest.approx(0.5)
    rates.refund(store, "dial:+1", rate=1.0, timeout_s=2.0)  # Twilio refused the call
    assert rates.hit(store, "dial:+1", now=NOW + 0.5, **kw).wait_s == 0
    assert rates.prune(store, now=NOW + 1.0, timeout_s=2.0) == 0  # due at NOW + 1.5
    assert rates.prune(store, now=NOW + 1.5, timeout_s=2.0) == 1


def test_atomic_rolls_back_when_fn_raises(store: Store) -> None:
    def boom(t: object) -> None:
        t.run("INSERT INTO call_slots VALUES ('CA1', '+1', 'a', 0, 1e12)")
        raise ValueError("no")

    with pytest.raises(ValueError):
        store.atomic(boom, lock=1, timeout_s=2.0)
    assert CallSlots(store).held(now=NOW) == 0


def test_expired_slots_do_not_count_and_are_pruned(store: Store) -> None:
    a = CallSlots(store, instance="a")
    caps = Caps(total=1, per_number=0)
    assert a.reserve("CA1", "+1", caps, now=NOW, ttl_s=30) is None
    # Expired, not pruned yet: it no longer counts, and its SID may take a slot again.
    assert a.claim("CA1", "+1", caps, now=NOW + 31, lease_s=60) is None
    assert a.held(now=NOW + 31) == 1
    assert a.prune(now=NOW + 31) == 0
    assert a.prune(now=NOW + 91) == 1
    assert a.held(now=NOW) == 0
