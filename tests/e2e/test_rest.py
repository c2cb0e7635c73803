"""Ending a call through Twilio's REST API as well (credentials configured), end to end."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import CallScript
from tests.e2e.conftest import PUBLIC, CallStarted, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator


async def test_admin_hangup_ends_the_stream_and_completes_the_call_over_rest(
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tw = twilio_emulator
    agent = platform_emulator.create_agent(behaviour={"mode": "echo"}, first_message="Hello.")
    async for e2e in running_bridge(
        platform_emulator,
        TWILIO_ACCOUNT_SID=tw.account_sid,
        TWILIO_AUTH_TOKEN=tw.auth_token,
        TWILIO_API_BASE_URL=tw.http_url,
    ):
        started = CallStarted()
        e2e.app.state.services.watch = started
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
