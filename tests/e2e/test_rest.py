"""Ending a call through Twilio's REST API as well (credentials configured), end to end."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import CallScript
from tests.e2e.conftest import CallStarted
from tests.fixtures.bridge import PUBLIC, bridge_config, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator


async def test_admin_hangup_ends_the_stream_and_completes_the_call_over_rest(
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tw = twilio_emulator
    agent = platform_emulator.create_agent(behaviour={"mode": "echo"}, first_message="Hello.")
    started = CallStarted()
    cfg = bridge_config(
        platform_emulator,
        TWILIO_ACCOUNT_SID=tw.account_sid,
        TWILIO_AUTH_TOKEN=tw.auth_token,
        TWILIO_API_BASE_URL=tw.http_url,
    )
    async with running_bridge(platform_emulator, cfg, watch=started) as e2e:
        call = asyncio.create_task(
            tw.place_call(
                e2e.server.http_url,
                to=e2e.number_for(agent),
                script=CallScript(max_duration_s=30),  # would stay on the line for 30 s
                speed=4.0,
                public_url=PUBLIC,
                voice_path="/twilio/inbound",
            )
        )
        await started.event.wait()
        (live,) = list(e2e.app.state.calls)
        with caplog.at_level(logging.INFO, logger="bridge.call"):
            assert e2e.app.state.calls.hangup(live.call_sid) is True
            res = await asyncio.wait_for(call, 10)
            await asyncio.sleep(0)  # let the REST task log its outcome
        assert res.outcome is Outcome.COMPLETED, res.reason
        assert e2e.call_record_reason(res.call_sid) == "admin_hangup"
        events = [r.getMessage() for r in caplog.records]
        assert "call.rest_hangup" in events
        assert "call.rest_hangup_failed" not in events
        assert e2e.app.state.calls.hangup(live.call_sid) is False  # gone from the registry


async def test_transfer_is_sent_over_rest_so_any_instance_could_answer(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    tw = twilio_emulator
    agent = platform_emulator.create_agent(
        behaviour={"mode": "silent", "steps": [{"type": "close", "code": 1011}]}
    )
    cfg = bridge_config(
        platform_emulator,
        sections={"calls": {"on_agent_failure": "transfer", "fallback_number": "+14155550199"}},
        TWILIO_ACCOUNT_SID=tw.account_sid,
        TWILIO_AUTH_TOKEN=tw.auth_token,
        TWILIO_API_BASE_URL=tw.http_url,
    )
    async with running_bridge(platform_emulator, cfg) as e2e:
        res = await tw.place_call(
            e2e.server.http_url,
            to=e2e.number_for(agent),
            script=CallScript(max_duration_s=30),
            speed=4.0,
            public_url=PUBLIC,
            voice_path="/twilio/inbound",
        )
        assert res.transfer_to == "+14155550199"
        # Twilio ran the <Dial> it got over REST and never asked the <Connect action>.
        whys = [f.why for f in res.fetches]
        assert "rest-update" in whys and "connect-action" not in whys
        assert e2e.call_record_reason(res.call_sid) == "agent_failed"
