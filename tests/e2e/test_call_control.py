"""Barge-in, the ends of a call (agent, caller, failure) and signed URLs, end to end."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bridge.call.tools import CallControl
from bridge.emulator.platform import Fault
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import (
    BargeIn,
    CallerHangsUp,
    CallScript,
    Pause,
    Press,
    WaitForAgent,
)
from bridge.emulator.twilio.twiml import Say
from tests.e2e.conftest import heard_between, script_time, tone_snr_db, tone_ulaw
from tests.fixtures.bridge import BridgeUnderTest, bridge_config, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator

LONG_GREETING = (
    "Hello and welcome. This greeting goes on for quite a while, so that there is "
    "plenty of time to talk over it and cut it short."
)
GOODBYE = "Thanks for calling, that is all for today. Goodbye!"


async def test_barge_in_clears_twilio_and_no_stale_audio_follows(e2e: BridgeUnderTest) -> None:
    agent = e2e.platform.create_agent(behaviour={"mode": "echo"}, first_message=LONG_GREETING)
    script = CallScript.of(
        BargeIn(tone_ulaw(0.8), after_s=0.5),
        WaitForAgent(timeout_s=10, quiet_s=0.6),
        CallerHangsUp(),
        max_duration_s=30,
    )
    # Real time: the emulated agent paces its speech on the wall clock, and "audible for
    # 0.5 s" only means that when the caller's clock runs at the same speed.
    res = await e2e.call(agent, script, speed=1.0)
    assert res.outcome is Outcome.COMPLETED, res.reason
    assert "barge-in" in [e.kind for e in res.script_events]
    stream = res.stream
    assert stream is not None
    record = await e2e.platform.wait_until_ended(e2e.conversation(agent).conversation_id)
    assert len(record.interruptions) == 1

    # Twilio got a clear, after the caller started talking, and dropped the greeting.
    barge = script_time(res, "barge-in")
    (clear_at,) = stream.clears
    assert clear_at >= barge
    assert any(m.cleared for m in stream.marks)  # greeting marks echoed by the clear
    # Everything heard after the clear is the echo of the tone: no greeting leftovers.
    after = heard_between(res, clear_at)
    assert len(after) >= 8000 * 0.7
    assert tone_snr_db(after) >= 30.0
    received = [r.event for r in stream.received]
    first_after_clear = received[received.index("clear") + 1 :]
    assert first_after_clear and first_after_clear[0] == "media"


async def test_agent_end_call_plays_the_goodbye_then_ends_the_call(e2e: BridgeUnderTest) -> None:
    agent = e2e.platform.create_agent(
        behaviour={"mode": "silent", "steps": [{"type": "end_call"}]}, first_message=GOODBYE
    )
    res = await e2e.call(agent, CallScript(max_duration_s=30))
    assert res.outcome is Outcome.COMPLETED, res.reason
    stream = res.stream
    assert stream is not None
    record = e2e.conversation(agent)
    assert record.closed_by == "agent" and record.close_code == 1000

    # Every byte the agent said was heard, every mark played (none cleared), and only
    # then did the bridge close the stream.
    heard = heard_between(res, 0.0)
    expected = record.audio_bytes_sent * 8000 // 32000  # pcm_16000 → mu-law 8000
    assert abs(len(heard) - expected) <= 80
    assert stream.marks and not any(m.cleared for m in stream.marks)
    assert stream.ended_by == "bridge"
    assert stream.ended_at is not None
    assert stream.ended_at >= max(m.echoed for m in stream.marks)
    # Twilio then asked the <Connect action> and was told to hang up.
    (action,) = [f for f in res.fetches if f.why == "connect-action"]
    assert action.status == 200 and "<Hangup" in action.twiml
    assert e2e.call_record_reason(res.call_sid) == "agent_end_call"


async def test_caller_hangup_closes_the_agent_socket_within_a_second(e2e: BridgeUnderTest) -> None:
    agent = e2e.platform.create_agent(behaviour={"mode": "echo"}, first_message="Hi.")
    res = await e2e.call(
        agent, CallScript.of(WaitForAgent(timeout_s=10), Pause(0.5), CallerHangsUp())
    )
    assert res.outcome is Outcome.COMPLETED, res.reason
    conversation_id = e2e.conversation(agent).conversation_id
    record = await e2e.platform.wait_until_ended(conversation_id)
    assert record.closed_by == "client" and record.close_code == 1000
    # The caller's hang-up, on the wall clock: call time → monotonic → unix time.
    hung_up_mono = res.t0 + script_time(res, "hangup") / res.speed
    hung_up_unix = hung_up_mono + (time.time() - time.monotonic())
    assert record.ended_at_unix is not None
    assert record.ended_at_unix - hung_up_unix < 1.0
    assert len(e2e.app.state.calls) == 0  # nothing of the call is left in the bridge
    call_tasks = {"agent", "agent-writer", "agent-close", "twilio-reader", "twilio-writer"}
    assert not [t for t in asyncio.all_tasks() if t.get_name() in call_tasks]
    assert e2e.call_record_reason(res.call_sid) == "caller_hangup"


async def test_agent_failure_mid_call_gets_the_apology(e2e: BridgeUnderTest) -> None:
    agent = e2e.platform.create_agent(
        behaviour={"mode": "silent", "steps": [{"type": "play", "ms": 600}, {"type": "close"}]}
    )
    res = await e2e.call(agent, CallScript(max_duration_s=30))
    assert res.outcome is Outcome.COMPLETED, res.reason
    assert e2e.conversation(agent).close_code == 1011
    says = [v for v in res.experience if isinstance(v, Say)]
    assert says and says[0].text == e2e.app.state.config.calls.apology_text
    assert e2e.call_record_reason(res.call_sid) == "agent_failed"


async def test_agent_failure_can_transfer_to_the_fallback_number(
    platform_emulator: PlatformEmulator,
) -> None:
    agent = platform_emulator.create_agent(
        behaviour={"mode": "silent", "steps": [{"type": "close", "code": 1011}]}
    )
    calls = {"on_agent_failure": "transfer", "fallback_number": "+14155550199"}
    cfg = bridge_config(platform_emulator, sections={"calls": calls})
    async with running_bridge(platform_emulator, cfg) as e2e:
        res = await e2e.call(agent, CallScript(max_duration_s=30))
        assert res.transfer_to == "+14155550199"
        assert e2e.call_record_reason(res.call_sid) == "agent_failed"


async def test_unknown_agent_gets_the_apology(e2e: BridgeUnderTest) -> None:
    number = e2e.number_for("agent_does_not_exist")
    res = await e2e.call("agent_does_not_exist", CallScript(max_duration_s=30), to=number)
    assert any(isinstance(v, Say) for v in res.experience)
    assert e2e.call_record_reason(res.call_sid) == "agent_failed"


# --------------------------------------------------------------------------- private agents


async def test_private_agent_through_a_signed_url(platform_emulator: PlatformEmulator) -> None:
    agent = platform_emulator.create_agent(
        behaviour={"mode": "silent", "steps": [{"type": "end_call"}]},
        first_message="Private hello.",
        private=True,
    )
    script = CallScript(max_duration_s=30)
    # Without an API key the bridge can only use the public URL: refused, apology.
    async with running_bridge(platform_emulator) as e2e:
        res = await e2e.call(agent, script)
        assert any(isinstance(v, Say) for v in res.experience)
        assert platform_emulator.conversations(agent) == []
    # With the key it fetches a signed URL and the conversation happens.
    cfg = bridge_config(platform_emulator, ELEVENLABS_API_KEY=platform_emulator.api_key)
    async with running_bridge(platform_emulator, cfg) as e2e:
        res = await e2e.call(agent, script)
        assert res.outcome is Outcome.COMPLETED, res.reason
        assert not any(isinstance(v, Say) for v in res.experience)
        (record,) = platform_emulator.conversations(agent)
        assert record.closed_by == "agent"
        assert len(heard_between(res, 0.0)) > 4000


async def test_signed_url_server_error_gets_the_apology(
    platform_emulator: PlatformEmulator,
) -> None:
    agent = platform_emulator.create_agent(behaviour={"mode": "echo"}, private=True)
    platform_emulator.state.inject_fault(
        Fault(path_prefix="/v1/convai/conversation/get-signed-url", status=503, times=100)
    )
    cfg = bridge_config(platform_emulator, ELEVENLABS_API_KEY=platform_emulator.api_key)
    async with running_bridge(platform_emulator, cfg) as e2e:
        res = await e2e.call(agent, CallScript(max_duration_s=30))
        says = [v for v in res.experience if isinstance(v, Say)]
        assert says and says[0].text == e2e.app.state.config.calls.apology_text
        assert platform_emulator.conversations(agent) == []
        assert e2e.call_record_reason(res.call_sid) == "agent_failed"
        registry = e2e.app.state.metrics.registry
        assert (
            registry.get_sample_value("bridge_upstream_errors_total", {"kind": "signed_url"}) == 1
        )


async def test_a_crashing_feature_hook_is_logged_and_the_call_goes_on(
    platform_emulator: PlatformEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    pressed: list[str] = []

    async def broken_keypad(call: CallControl, digit: str) -> None:
        pressed.append(digit)
        raise RuntimeError("keypad feature bug")

    async with running_bridge(platform_emulator, on_keypad=broken_keypad) as e2e:
        agent = e2e.platform.create_agent(behaviour={"mode": "echo"}, first_message="Hi.")
        script = CallScript.of(WaitForAgent(timeout_s=10), Press("5"), Pause(0.5), CallerHangsUp())
        with caplog.at_level(logging.ERROR, logger="bridge.call"):
            res = await e2e.call(agent, script)
        assert res.outcome is Outcome.COMPLETED, res.reason
        assert pressed == ["5"]
        (crash,) = [r for r in caplog.records if r.getMessage() == "call.task_crashed"]
        assert crash.bridge_fields["task"] == "keypad"  # type: ignore[attr-defined]
        assert "keypad feature bug" in crash.bridge_fields["error"]  # type: ignore[attr-defined]
        assert e2e.call_record_reason(res.call_sid) == "caller_hangup"
