"""Deployment-wide limits end to end: two bridges (instances A and B) over one store.

Each test runs on PostgreSQL (two instances sharing a server) and on one SQLite file
(apps sharing it, as workers on one host do).  The caps hold across A and B, a stream
token used on A is refused on B, and simultaneous webhooks on both never admit more
calls than the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.http import INBOUND_PATH
from bridge.store import NumberRecord
from bridge.telephony.shared_limits import SharedLimits
from bridge.twilio.signature import compute_signature
from tests.e2e.conftest import with_token
from tests.e2e.test_stream_admission import closed_with, refused
from tests.faults.conftest import raw_stream
from tests.faults.test_agent_faults import HEALTHY_SCRIPT, assert_healthy, loopback_agent
from tests.fixtures.bridge import (
    ACCOUNT_SID,
    CALLER,
    PUBLIC,
    TOKEN,
    BridgeUnderTest,
    bridge_config,
    eventually,
    running_bridge,
)
from tests.fixtures.platform_emulator import PlatformEmulator

_sids = itertools.count(1)


@pytest.fixture(params=["postgres", "sqlite"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("postgres_dsn")
        return dsn
    return str(tmp_path / "shared.db")


@contextlib.asynccontextmanager
async def two_bridges(
    platform: PlatformEmulator, db: str, **telephony: Any
) -> AsyncIterator[tuple[BridgeUnderTest, BridgeUnderTest]]:
    """Instances A and B over ``db``; ``telephony`` replaces keys of that section."""

    def config(instance: str) -> Any:
        return bridge_config(
            platform,
            sections={"platform": {"sync_interval_s": 0}, "telephony": telephony},
            BRIDGE_DB=db,
            BRIDGE_INSTANCE_ID=instance,
        )

    async with (
        running_bridge(platform, config("a"), settle_sync=True) as a,
        running_bridge(platform, config("b"), settle_sync=True) as b,
    ):
        yield a, b


def limits(bridge: BridgeUnderTest) -> SharedLimits:
    shared = bridge.app.state.bridge.shared_limits
    assert isinstance(shared, SharedLimits)
    return shared


def held(bridge: BridgeUnderTest) -> int:
    return limits(bridge).slots.held(now=time.time())


def route_everywhere(agent: str, *bridges: BridgeUnderTest) -> str:
    """A fresh number of ours, routed to ``agent`` on every bridge."""
    number = bridges[0].number_for(agent)
    for b in bridges[1:]:
        b.app.state.routing.apply(NumberRecord(number=number, agent_id=agent))
    return number


async def webhook(bridge: BridgeUnderTest, to: str) -> str:
    """The TwiML a signed voice webhook (as Twilio sends it) gets from ``bridge``."""
    form = {
        "CallSid": f"CA{next(_sids):032x}",
        "AccountSid": ACCOUNT_SID,
        "From": CALLER,
        "To": to,
        "Direction": "inbound",
        "CallStatus": "ringing",
    }
    signature = compute_signature(TOKEN, PUBLIC + INBOUND_PATH, form)
    async with httpx.AsyncClient(base_url=bridge.url, trust_env=False, timeout=30) as http:
        r = await http.post(INBOUND_PATH, data=form, headers={"X-Twilio-Signature": signature})
    assert r.status_code == 200, r.text
    return r.text


def admitted(twiml: str) -> bool:
    """True for a ``<Connect><Stream>``; False for the over-capacity answer (busy)."""
    if "<Connect " in twiml:
        return True
    assert '<Reject reason="busy"' in twiml, twiml
    return False


async def test_the_global_cap_holds_across_instances(
    platform_emulator: PlatformEmulator, shared_db: str
) -> None:
    p = platform_emulator
    agent, healthy = loopback_agent(p), loopback_agent(p)
    async with two_bridges(p, shared_db, max_concurrent_calls=1) as (a, b):
        number = route_everywhere(agent, a, b)
        # A call on A (webhook and stream there): the deployment's one slot.
        good = asyncio.create_task(a.call(healthy, HEALTHY_SCRIPT))
        await eventually(lambda: len(a.app.state.calls) == 1)
        # B refuses a webhook the documented way: busy, unanswered.
        assert not admitted(await webhook(b, number))
        assert b.metric("bridge_refused_calls_total", reason="over_capacity") == 1
        # A stream opened on B without a webhook is counted all the same.
        async with raw_stream(b) as extra:
            await extra.start({"agent_id": agent, "caller_id": CALLER, "called_number": number})
            assert await closed_with(extra.ws) == 1000  # authentic, ended over capacity
        assert refused(b.app, "over_capacity") == 1
        assert b.call_record_reason(extra.call_sid) == "over_capacity"
        assert p.conversations(agent) == []
        assert_healthy(a, await good)
        # Once A's call is over its slot is free, for B too.
        await eventually(lambda: held(a) == 0)
        assert admitted(await webhook(b, number))


async def test_the_per_number_cap_holds_across_instances(
    platform_emulator: PlatformEmulator, shared_db: str
) -> None:
    p = platform_emulator
    agent = loopback_agent(p)
    async with two_bridges(
        p, shared_db, max_concurrent_calls=0, max_concurrent_calls_per_number=1
    ) as (a, b):
        number, other = route_everywhere(agent, a, b), route_everywhere(agent, a, b)
        assert admitted(await webhook(a, number))  # the number's one slot, reserved on A
        assert not admitted(await webhook(b, number))
        assert admitted(await webhook(b, other))  # another number is not affected
        assert not admitted(await webhook(a, other))
        assert held(b) == 2


async def test_a_token_used_on_one_instance_is_refused_on_the_other(
    platform_emulator: PlatformEmulator, shared_db: str
) -> None:
    p = platform_emulator
    agent = loopback_agent(p)
    async with two_bridges(p, shared_db) as (a, b):
        async with raw_stream(a) as first:
            params = with_token(a.app, first.call_sid, {"agent_id": agent, "caller_id": CALLER})
            await first.start(params, token=False)
            await first.media()
            await eventually(lambda: a.app.state.calls.get(first.call_sid) is not None)
            # The same start on B, while the call runs on A: B never saw the token.
            async with raw_stream(b) as replay:
                await replay.start(params, token=False, call_sid=first.call_sid)
                assert await closed_with(replay.ws) == 1008
            await first.stop()
        assert refused(b.app, "replayed") == 1
        assert len(b.app.state.calls) == 0
        await eventually(lambda: len(p.conversations(agent)) == 1)
        # And once the call is over, still refused (the claim outlives the call).
        async with raw_stream(b) as late:
            await late.start(params, token=False, call_sid=first.call_sid)
            assert await closed_with(late.ws) == 1008
        assert refused(b.app, "replayed") == 2
        assert len(p.conversations(agent)) == 1


async def test_simultaneous_webhooks_on_both_instances_never_overshoot(
    platform_emulator: PlatformEmulator, shared_db: str
) -> None:
    p = platform_emulator
    agent = loopback_agent(p)
    async with two_bridges(p, shared_db, max_concurrent_calls=5) as (a, b):
        number = route_everywhere(agent, a, b)
        answers = await asyncio.gather(*(webhook((a, b)[i % 2], number) for i in range(20)))
        assert sum(map(admitted, answers)) == 5
        assert held(a) == 5
        refusals = sum(
            x.metric("bridge_refused_calls_total", reason="over_capacity") for x in (a, b)
        )
        assert refusals == 15
