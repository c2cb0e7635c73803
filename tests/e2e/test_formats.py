"""A whole call in each agent audio format: greeting, speech to the agent, echo back."""

from __future__ import annotations

import pytest

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Talk, WaitForAgent
from tests.e2e.conftest import heard_between, script_time, tone_snr_db, tone_ulaw
from tests.fixtures.bridge import CALLER, BridgeUnderTest, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator

GREETING = "Hello, you are through to the test agent."


@pytest.mark.parametrize("fmt", ["ulaw_8000", "pcm_16000", "pcm_44100"])
async def test_greeting_speech_and_echo_in_every_format(e2e: BridgeUnderTest, fmt: str) -> None:
    agent = e2e.platform.create_agent(
        behaviour={"mode": "echo"}, input_format=fmt, output_format=fmt, first_message=GREETING
    )
    script = CallScript.of(
        WaitForAgent(timeout_s=10, quiet_s=0.6),  # the greeting
        Talk(tone_ulaw(1.0), label="tone"),
        WaitForAgent(timeout_s=10, quiet_s=0.6),  # the echo of the tone
        CallerHangsUp(),
        max_duration_s=30,
    )
    res = await e2e.call(agent, script)
    assert res.outcome is Outcome.COMPLETED, res.reason
    stream = res.stream
    assert stream is not None
    assert stream.custom_parameters["agent_id"] == agent

    talk_start, talk_end = script_time(res, "talk-start"), script_time(res, "talk-end")
    greeting = heard_between(res, 0.0, talk_start)
    assert len(greeting) > 8000 * 1.0  # seconds of synthetic speech, at 8000 bytes/s

    record = await e2e.platform.wait_until_ended(e2e.conversation(agent).conversation_id)
    # The caller's tone reached the agent as one utterance of about a second.
    assert record.audio_bytes[fmt] > 0
    assert len(record.utterances_ms) == 1 and 900 <= record.utterances_ms[0] <= 1300

    # Its echo came back through both transcoders and two mu-law encodings intact.
    echo = heard_between(res, talk_end)
    assert len(echo) >= 8000 * 0.9
    assert tone_snr_db(echo) >= 30.0

    # Dynamic variables: the call's own facts.
    assert record.dynamic_variables == {
        "caller_id": CALLER,
        "called_number": res.to,
        "call_sid": res.call_sid,
        "stream_sid": stream.stream_sid,
    }
    assert record.closed_by == "client"  # the caller hung up; the bridge closed the agent
    assert e2e.call_record_reason(res.call_sid) == "caller_hangup"


async def test_a_server_without_the_direct_sockets_relays_through_plain_asgi(
    platform_emulator: PlatformEmulator,
) -> None:
    """Under uvicorn's stock protocol (no "bridge.direct") the media endpoint falls back to
    plain ASGI receive/send (AsgiSocket): the same call, the same audio."""
    agent = platform_emulator.create_agent(
        behaviour={"mode": "echo"}, input_format="pcm_16000", output_format="pcm_16000"
    )
    script = CallScript.of(
        WaitForAgent(timeout_s=10, quiet_s=0.6),
        Talk(tone_ulaw(1.0), label="tone"),
        WaitForAgent(timeout_s=10, quiet_s=0.6),
        CallerHangsUp(),
        max_duration_s=30,
    )
    async with running_bridge(platform_emulator, ws="websockets-sansio") as e2e:
        res = await e2e.call(agent, script)
        assert res.outcome is Outcome.COMPLETED, res.reason
        echo = heard_between(res, script_time(res, "talk-end"))
        assert len(echo) >= 8000 * 0.9
        assert tone_snr_db(echo) >= 30.0
        assert e2e.call_record_reason(res.call_sid) == "caller_hangup"
