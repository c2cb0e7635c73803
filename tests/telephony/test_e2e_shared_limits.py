"""Outbound limits across instances: two bridges over one store, the Twilio emulator as
Twilio.  The per-number rate limit and the concurrent-call cap of a from-number hold
across both (``telephony.shared_limits``), on PostgreSQL and on one SQLite file."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.emulator.twilio.callee import CalleeMode
from bridge.store import NumberRecord
from tests.fixtures.bridge import BridgeUnderTest, bridge_config, eventually, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator
from tests.telephony.conftest import ADMIN_TOKEN

CALLEE = "+14155550177"


@pytest.fixture(params=["postgres", "sqlite"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("postgres_dsn")
        return dsn
    return str(tmp_path / "shared.db")


@contextlib.asynccontextmanager
async def two_phones(
    platform: PlatformEmulator, twilio: TwilioEmulator, db: str, **telephony: Any
) -> AsyncIterator[tuple[BridgeUnderTest, BridgeUnderTest]]:
    def config(instance: str) -> Any:
        return bridge_config(
            platform,
            twilio=twilio,
            sections={"platform": {"sync_interval_s": 0}, "telephony": telephony},
            BRIDGE_ADMIN_TOKEN=ADMIN_TOKEN,
            BRIDGE_DB=db,
            BRIDGE_INSTANCE_ID=instance,
        )

    async with (
        running_bridge(platform, config("a"), twilio=twilio) as a,
        running_bridge(platform, config("b"), twilio=twilio) as b,
    ):
        yield a, b


def ours(agent: str, a: BridgeUnderTest, b: BridgeUnderTest) -> str:
    number = a.number_for(agent)
    b.app.state.routing.apply(NumberRecord(number=number, agent_id=agent))
    return number


def _agent(p: BridgeUnderTest) -> str:
    return p.platform.create_agent(
        behaviour={"mode": "echo"}, input_format="ulaw_8000", output_format="ulaw_8000"
    )


async def test_the_outbound_rate_limit_holds_across_instances(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator, shared_db: str
) -> None:
    async with two_phones(
        platform_emulator, twilio_emulator, shared_db, outbound_calls_per_second=0.2
    ) as (a, b):
        agent = _agent(a)
        number, other = ours(agent, a, b), ours(agent, a, b)
        twilio_emulator.state.set_callee(CALLEE, CalleeMode.BUSY)
        first = await a.admin("POST", "/calls", {"to": CALLEE, "from": number})
        assert first.status_code == 201, first.text
        second = await b.admin("POST", "/calls", {"to": CALLEE, "from": number})
        assert second.status_code == 429, second.text
        assert second.json()["error"]["field"] == "from"
        assert 1 <= int(second.headers["retry-after"]) <= 5
        third = await b.admin("POST", "/calls", {"to": CALLEE, "from": other})
        assert third.status_code == 201, third.text
        assert len(twilio_emulator.state.calls) == 2


async def test_the_outbound_concurrency_cap_holds_across_instances(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator, shared_db: str
) -> None:
    async with two_phones(
        platform_emulator,
        twilio_emulator,
        shared_db,
        max_concurrent_calls_per_number=1,
        outbound_calls_per_second=100.0,
    ) as (a, b):
        number = ours(_agent(a), a, b)
        twilio_emulator.state.set_callee(CALLEE, CalleeMode.NO_ANSWER)
        twilio_emulator.state.speed = 20.0
        first = await a.admin("POST", "/calls", {"to": CALLEE, "from": number, "ring_timeout": 10})
        assert first.status_code == 201, first.text
        second = await b.admin("POST", "/calls", {"to": CALLEE, "from": number})
        assert second.status_code == 429
        assert "concurrent-call cap" in second.json()["error"]["message"]
        # Unanswered: its final status frees the slot (B receives the callbacks).
        await b.finished(first.json()["call_sid"])
        shared = b.app.state.bridge.shared_limits
        await eventually(lambda: shared.slots.held(now=time.time()) == 0)
        third = await b.admin("POST", "/calls", {"to": CALLEE, "from": number, "ring_timeout": 5})
        assert third.status_code == 201, third.text
        await b.finished(third.json()["call_sid"])
