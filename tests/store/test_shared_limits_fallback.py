"""Deployment-wide limits when the store does not answer (another client holds the lock
past ``telephony.shared_limits_timeout_s``): every check falls back to this process's
own count, says so once, and goes back to the store when it answers again."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bridge.call.registry import LiveCalls
from bridge.config import Config, load_config
from bridge.store import Store, claims, slots
from bridge.telephony.capacity import CapacityAdmission
from bridge.telephony.shared_limits import SharedLimits
from tests.store.conftest import Locker, events


@pytest.fixture
def config(db: str) -> Config:
    return load_config(
        None,
        env={
            "BRIDGE_DB": db,
            "BRIDGE_MAX_CONCURRENT_CALLS": "1",
            "TWILIO_AUTH_TOKEN": "fallback-test-token",
        },
    )


@pytest.fixture
def limits(config: Config, store: Store) -> SharedLimits:
    calls = LiveCalls()
    local = CapacityAdmission(config.telephony, calls)
    return SharedLimits(config, store, local, calls)


def hold(locker: Locker) -> None:
    """The database's write lock (SQLite) / the limits' advisory locks (PostgreSQL)."""
    locker.hold()
    if locker.postgres:
        for key in (slots.LOCK, claims.LOCK):
            locker.run(f"SELECT pg_advisory_xact_lock({key})")


@pytest.fixture
def held_lock(locker: Locker, store: Store) -> Iterator[Locker]:
    hold(locker)
    yield locker
    locker.release()


async def test_reserve_falls_back_to_the_process_cap_and_recovers(
    limits: SharedLimits, locker: Locker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    hold(locker)
    assert await limits.reserve("+1", "CA1") is None  # the process cap (1) has room
    refused = await limits.reserve("+1", "CA2")
    assert refused is not None and refused.reason == "over_capacity"
    assert len(events(caplog, "limits.store_unavailable", logging.WARNING)) == 1
    locker.release()
    # The store answers again: it never saw CA1, so it has the one slot to give.
    assert await limits.reserve("+1", "CA3") is None
    assert await limits.reserve("+1", "CA4") is not None
    assert len(events(caplog, "limits.store_recovered")) == 1


def test_stream_checks_fall_back_while_the_store_is_locked(
    limits: SharedLimits, held_lock: Locker
) -> None:
    # Token single use: only the per-process memory (checked before) is left.
    assert limits.claim_stream("CA1", "mac", 1e12)
    assert limits.claim_stream("CA1", "mac", 1e12)
    # The cap: this process's live calls and holds (none yet).
    assert limits.admit_stream("+1", "CA1") is None


def test_stream_checks_use_the_store_when_it_answers(limits: SharedLimits) -> None:
    assert limits.claim_stream("CA1", "mac", 1e12)
    assert not limits.claim_stream("CA1", "mac", 1e12)
    assert limits.admit_stream("+1", "CA1") is None
    refused = limits.admit_stream("+1", "CA2")
    assert refused is not None and refused.reason == "over_capacity"
    limits.release("CA1")  # no event loop here: released at once
    assert limits.admit_stream("+1", "CA2") is None
