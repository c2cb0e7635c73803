"""Call limits end to end: each one ends (or refuses) the call with a logged reason."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bridge.audio import signals
from bridge.audio.g711 import ulaw_encode
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk
from bridge.emulator.twilio.twiml import Hangup, Say
from tests.fixtures.bridge import BridgeUnderTest
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator
from tests.telephony.conftest import running_phone


def _silent_agent(p: BridgeUnderTest) -> str:
    return p.platform.create_agent(
        behaviour={"mode": "silent", "greeting": False},
        input_format="ulaw_8000",
        output_format="ulaw_8000",
    )


def _logged(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == event]


async def test_max_duration_warns_the_agent_then_ends_the_call(
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    async with running_phone(
        platform_emulator, twilio_emulator, max_call_duration_s=1.5, duration_warning_s=1.0
    ) as p:
        agent = _silent_agent(p)
        started = time.monotonic()
        res = await p.call(agent, CallScript.of(Pause(60.0), CallerHangsUp(), max_duration_s=120))
        assert time.monotonic() - started < 10  # the caller would have stayed 15 s
        assert res.outcome is Outcome.COMPLETED
        assert res.stream is not None and res.stream.ended_by in ("bridge", "rest")
        conv = await p.ended_conversation(agent)
        (warning,) = conv.contextual_updates
        assert "maximum length" in warning
        rec = p.record(res.call_sid)
        assert rec.end_reason == "max_duration"
        assert [e["event"] for e in rec.events] == ["duration_warning", "limit"]
        (limit,) = _logged(caplog, "telephony.limit_reached")
        assert limit.bridge_fields["limit"] == "max_duration"  # type: ignore[attr-defined]
        ending = [r for r in _logged(caplog, "call.ending")]
        assert ending[0].bridge_fields["reason"] == "max_duration"  # type: ignore[attr-defined]


async def test_silence_timeout_ends_a_silent_call(
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    async with running_phone(platform_emulator, twilio_emulator, silence_timeout_s=1.0) as p:
        agent = _silent_agent(p)
        res = await p.call(agent, CallScript.of(Pause(60.0), CallerHangsUp(), max_duration_s=120))
        assert res.stream is not None and res.stream.ended_by in ("bridge", "rest")
        assert p.record(res.call_sid).end_reason == "silence"
        (limit,) = _logged(caplog, "telephony.limit_reached")
        assert limit.bridge_fields["limit"] == "silence"  # type: ignore[attr-defined]


async def test_silence_timeout_counts_from_the_callers_last_sound(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator, silence_timeout_s=0.5) as p:
        agent = _silent_agent(p)
        # 10 s of talking (1 s of wall time at 10x): longer than the timeout, but not silence.
        talk = ulaw_encode(signals.to_pcm16(signals.tone(300.0, 10.0, 8000, -20.0)))
        res = await p.call(
            agent,
            CallScript.of(Pause(0.5), Talk(talk, "talk"), Pause(60.0), max_duration_s=120),
            speed=10.0,
        )
        talk_end = next(e.t for e in res.script_events if e.kind == "talk-end")
        stream = res.stream
        assert stream is not None and stream.ended_at is not None
        assert stream.ended_at > talk_end
        assert p.record(res.call_sid).end_reason == "silence"


async def _hold_a_call(p: BridgeUnderTest, agent: str, number: str) -> asyncio.Task[CallResult]:
    """A call that stays on the line (~1 s of wall time); returns once it is live."""
    task = asyncio.create_task(p.call(agent, CallScript.of(Pause(4.0), CallerHangsUp()), to=number))
    deadline = time.monotonic() + 5
    while len(p.app.state.calls) == 0:
        assert time.monotonic() < deadline, "first call never went live"
        await asyncio.sleep(0.01)
    return task


async def test_per_number_cap_refuses_with_busy(
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    async with running_phone(
        platform_emulator, twilio_emulator, max_concurrent_calls_per_number=1
    ) as p:
        agent = _silent_agent(p)
        number, other = p.number_for(agent), p.number_for(agent)
        first = await _hold_a_call(p, agent, number)
        refused = await p.call(agent, CallScript.of(CallerHangsUp()), to=number)
        assert refused.outcome is Outcome.REJECTED
        assert refused.status == "busy"
        (webhook,) = refused.fetches
        assert "<Reject" in webhook.twiml
        # Another number is not affected by this number's cap.
        fine = await p.call(agent, CallScript.of(Pause(0.4), CallerHangsUp()), to=other)
        assert fine.outcome is Outcome.COMPLETED and fine.stream is not None
        done = await first
        assert done.outcome is Outcome.COMPLETED and done.stream is not None
        (over,) = _logged(caplog, "telephony.over_capacity")
        assert over.bridge_fields["number"] == number  # type: ignore[attr-defined]
        assert _logged(caplog, "call.refused")[0].bridge_fields["reason"] == "over_capacity"  # type: ignore[attr-defined]
        # Once the first call is over the number takes calls again.
        again = await p.call(agent, CallScript.of(Pause(0.4), CallerHangsUp()), to=number)
        assert again.outcome is Outcome.COMPLETED


async def test_global_cap_with_a_spoken_message(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(
        platform_emulator,
        twilio_emulator,
        max_concurrent_calls=1,
        over_capacity="message",
        over_capacity_message="All lines are busy.",
    ) as p:
        agent = _silent_agent(p)
        first = await _hold_a_call(p, agent, p.number_for(agent))
        refused = await p.call(agent, CallScript.of(), to=p.number_for(agent))
        assert refused.outcome is Outcome.COMPLETED
        assert refused.experience == [Say("All lines are busy."), Hangup()]
        assert refused.stream is None
        await first
