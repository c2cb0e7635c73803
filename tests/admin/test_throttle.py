"""The failed-authentication throttle (pure: a hand-moved clock)."""

from __future__ import annotations

import pytest

from bridge.admin.throttle import FailureThrottle, client_key


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_an_address_may_fail_per_minute_times_then_waits() -> None:
    clock = Clock()
    th = FailureThrottle(3, clock=clock)
    assert th.retry_after("a") is None
    assert [th.failed("a") for _ in range(3)] == [False, False, True]
    wait = th.retry_after("a")
    assert wait is not None and wait == pytest.approx(20.0)  # one try back every 60/3 s
    assert th.retry_after("b") is None  # other addresses are not affected
    clock.t += 19.0
    assert th.retry_after("a") == pytest.approx(1.0)
    clock.t += 1.0
    assert th.retry_after("a") is None
    assert th.failed("a") is True  # the one regained try, used: blocked again
    assert th.retry_after("a") == pytest.approx(20.0)


def test_a_minute_without_failures_restores_every_try() -> None:
    clock = Clock()
    th = FailureThrottle(3, clock=clock)
    for _ in range(3):
        th.failed("a")
    clock.t += 60.0
    assert [th.failed("a") for _ in range(3)] == [False, False, True]


def test_memory_is_bounded_by_max_addresses() -> None:
    clock = Clock()
    th = FailureThrottle(5, max_addresses=100, clock=clock)
    for i in range(10_000):  # an attacker with many addresses
        th.failed(f"10.0.{i // 256}.{i % 256}")
        assert len(th) <= 100
    # The most recent failures are the ones kept.
    assert th.retry_after("10.0.39.15") is None  # 10 000th address failed once: 4 tries left
    th.failed("10.0.39.15")
    assert len(th) == 100


def test_refilled_buckets_are_dropped() -> None:
    clock = Clock()
    th = FailureThrottle(2, clock=clock)
    for i in range(50):
        th.failed(f"192.0.2.{i}")
    assert len(th) == 50
    clock.t += 61.0
    th.failed("198.51.100.1")
    assert len(th) == 1


def test_client_key_groups_ipv6_by_64_and_unwraps_mapped_ipv4() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key(None) == "unknown"
    assert client_key("testclient") == "testclient"


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FailureThrottle(0)
