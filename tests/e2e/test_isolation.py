"""Forged requests are refused before any agent is reached; one bad stream harms no other."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk
from bridge.twilio import media as twilio
from bridge.twilio.signature import compute_signature
from tests.e2e.conftest import (
    CallStarted,
    heard_between,
    script_time,
    tone_snr_db,
    tone_ulaw,
    with_token,
)
from tests.fixtures.bridge import ACCOUNT_SID, TOKEN, BridgeUnderTest, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator

STREAM_URL = "wss://bridge.test/twilio/media"


async def test_forged_webhook_is_refused_and_no_agent_is_reached(e2e: BridgeUnderTest) -> None:
    agent = e2e.platform.create_agent(behaviour={"mode": "echo"}, first_message="Hi.")
    res = await e2e.call(agent, CallScript(max_duration_s=10), auth_token="not-the-token")
    assert res.outcome is Outcome.FAILED
    assert res.webhook is not None and res.webhook.status == 403
    assert res.streams == []
    assert e2e.platform.conversations(agent) == []


async def test_forged_media_stream_is_refused_and_no_agent_is_reached(e2e: BridgeUnderTest) -> None:
    agent = e2e.platform.create_agent(behaviour={"mode": "echo"}, first_message="Hi.")
    forged = compute_signature("not-the-token", STREAM_URL, {})
    for headers in ({"X-Twilio-Signature": forged}, {}):
        try:
            async with connect(e2e.server.ws_url + "/twilio/media", additional_headers=headers):
                raise AssertionError("the upgrade was accepted")
        except InvalidStatus as e:
            assert e.response.status_code == 403
    assert e2e.platform.conversations(agent) == []


GARBAGE_CALL = "CA" + "9" * 32


async def _garbage_stream(
    e2e: BridgeUnderTest, agent: str, other_started: asyncio.Event
) -> tuple[int | None, list[str]]:
    """Once another call is live: a signed stream that starts properly, then sends
    nothing but rubbish.  Returns its close code and the calls live when it closed."""
    await other_started.wait()
    sid, call = "MZ" + "9" * 32, GARBAGE_CALL
    headers = {"X-Twilio-Signature": compute_signature(TOKEN, STREAM_URL, {})}
    async with connect(e2e.server.ws_url + "/twilio/media", additional_headers=headers) as ws:
        await ws.send(twilio.encode(twilio.Connected()))
        body = twilio.StartBody(
            streamSid=sid,
            callSid=call,
            accountSid=ACCOUNT_SID,
            customParameters=with_token(e2e.app, call, {"agent_id": agent, "caller_id": "+1"}),
        )
        await ws.send(twilio.encode(twilio.Start(sequenceNumber="1", start=body, streamSid=sid)))
        rubbish: list[str | bytes] = [
            b"\x00\x01binary",
            "not json",
            '{"event": "media"}',
            '{"event": "warp", "sequenceNumber": "2"}',
            twilio.encode(
                twilio.Media(
                    sequenceNumber="3", media=twilio.MediaBody(payload="AAAA"), streamSid="MZother"
                )
            ),
            f'{{"event":"media","sequenceNumber":"x4","media":{{"payload":"AAAA"}},"streamSid":"{sid}"}}',
        ]
        try:
            for i in range(200):
                await ws.send(rubbish[i % len(rubbish)])
                await asyncio.sleep(0.005)
            await ws.wait_closed()  # the bridge gives up on it
        except ConnectionClosed:
            pass
        return ws.close_code, [c.call_sid for c in e2e.app.state.calls]


async def test_a_stream_sending_garbage_leaves_a_concurrent_call_unaffected(
    platform_emulator: PlatformEmulator,
) -> None:
    started = CallStarted()
    async with running_bridge(platform_emulator, watch=started) as e2e:
        loopback = e2e.platform.create_agent(
            behaviour={"mode": "loopback", "greeting": False}, input_format="pcm_16000"
        )
        script = CallScript.of(
            Pause(0.3), Talk(tone_ulaw(1.5)), Pause(0.5), CallerHangsUp(), max_duration_s=30
        )
        res, (close_code, live_then) = await asyncio.gather(
            e2e.call(loopback, script), _garbage_stream(e2e, loopback, started.event)
        )
        # The good call: the tone went to the agent and came back clean.
        assert res.outcome is Outcome.COMPLETED, res.reason
        heard = heard_between(res, script_time(res, "talk-start"))
        assert len(heard) >= 8000 * 1.2
        assert tone_snr_db(heard) >= 30.0
        assert e2e.call_record_reason(res.call_sid) == "caller_hangup"
        # The bad one was closed by the bridge while the good one went on, and recorded as
        # a protocol failure.
        assert close_code == 1000
        assert res.call_sid in live_then
        assert e2e.call_record_reason(GARBAGE_CALL) == "twilio_protocol"
        assert len(e2e.app.state.calls) == 0
