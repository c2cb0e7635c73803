"""A recording is finalised however the call ends: caller hang-up, agent end, transfer,
agent failure, a crash in the call's handler.  Each file is a valid WAV as long as the
call, and holds what the caller heard."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bridge.call.tools import CallControl
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk, WaitForAgent
from tests.e2e.conftest import tone_ulaw
from tests.fixtures.bridge import BridgeUnderTest
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator
from tests.recording.conftest import FRAME, Wav, check_heard, finalised, recording_bridge

# Real time, as a phone call runs: between two caller frames the bridge's idea of the
# caller's clock advances at the wall clock's rate (timeline.py), so an emulator running
# faster than real time would be followed only to within its frame spacing times its speed.
SPEED = 1.0


def as_long_as_the_stream(res: CallResult, rec: Wav) -> None:
    """The file covers every caller frame the bridge could have got, and not much more."""
    stream = res.stream
    assert stream is not None
    sent = len(stream.frames) * FRAME
    assert sent - 2 * FRAME <= rec.frames <= sent + 5 * FRAME, (rec.frames, sent)


async def ended(bridge: BridgeUnderTest, res: CallResult) -> Wav:
    rec = await finalised(bridge, res.call_sid)
    as_long_as_the_stream(res, rec)
    check_heard(res, rec)
    return rec


async def test_caller_hangs_up(platform_emulator: PlatformEmulator, tmp_path: Path) -> None:
    async with recording_bridge(platform_emulator, tmp_path) as bridge:
        agent = bridge.platform.create_agent(behaviour={"mode": "echo"}, first_message="Hi there.")
        script = CallScript.of(
            WaitForAgent(timeout_s=10), Talk(tone_ulaw(0.5)), Pause(0.3), CallerHangsUp()
        )
        res = await bridge.call(agent, script, speed=SPEED)
        assert res.outcome is Outcome.COMPLETED, res.reason
        rec = await ended(bridge, res)
        assert rec.left.any() and rec.right.any()
        assert bridge.call_record_reason(res.call_sid) == "caller_hangup"


async def test_agent_ends_the_call(platform_emulator: PlatformEmulator, tmp_path: Path) -> None:
    async with recording_bridge(platform_emulator, tmp_path) as bridge:
        agent = bridge.platform.create_agent(
            behaviour={"mode": "silent", "steps": [{"type": "end_call"}]},
            first_message="Thanks for calling, goodbye!",
        )
        res = await bridge.call(agent, CallScript(max_duration_s=30), speed=SPEED)
        assert res.outcome is Outcome.COMPLETED, res.reason
        rec = await ended(bridge, res)
        # The whole goodbye is in the file: the bridge waited for it to be heard.
        stream = res.stream
        assert stream is not None
        assert rec.right.any() and sum(len(s.data) for s in stream.heard) > 4000
        assert bridge.call_record_reason(res.call_sid) == "agent_end_call"


async def test_agent_fails_mid_call(platform_emulator: PlatformEmulator, tmp_path: Path) -> None:
    async with recording_bridge(platform_emulator, tmp_path) as bridge:
        agent = bridge.platform.create_agent(
            behaviour={
                "mode": "silent",
                "greeting": False,
                "steps": [{"type": "play", "ms": 600}, {"type": "close", "code": 1011}],
            }
        )
        res = await bridge.call(agent, CallScript(max_duration_s=30), speed=SPEED)
        rec = await ended(bridge, res)
        assert rec.right.any()  # it had been talking
        assert bridge.call_record_reason(res.call_sid) == "agent_failed"


async def test_transfer(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator, tmp_path: Path
) -> None:
    async with recording_bridge(
        platform_emulator,
        tmp_path,
        twilio=twilio_emulator,
        telephony={"transfer_allow": ("+1415555*",)},
    ) as bridge:
        agent = bridge.platform.create_agent(
            behaviour={
                "mode": "silent",
                "steps": [
                    {"type": "play", "ms": 800, "text": "Let me put you through."},
                    {
                        "type": "tool_call",
                        "tool_name": "transfer_call",
                        "parameters": {"phone_number": "+14155550100"},
                    },
                ],
            },
            input_format="ulaw_8000",
            output_format="ulaw_8000",
        )
        res = await bridge.call(agent, CallScript.of(max_duration_s=20), speed=SPEED)
        assert res.outcome is Outcome.COMPLETED, res.reason
        assert res.transfer_to == "+14155550100"
        rec = await ended(bridge, res)
        assert rec.right.any()  # the last words are in it
        assert bridge.call_record_reason(res.call_sid) == "transfer"


class CrashAfter:
    """A per-call watcher with a bug: it raises in the call's message handler once the
    call has run for ``frames`` caller frames (a real crash of the handler; the driver's
    crash path ends the call)."""

    def __init__(self, frames: int) -> None:
        self.frames = frames

    def __call__(self, call: CallControl) -> CrashAfter:
        return self

    def caller_audio(self, payload_b64: str) -> None:
        self.frames -= 1
        if self.frames == 0:
            raise RuntimeError("handler bug")

    def ended(self) -> None:
        pass


async def test_handler_crash(
    platform_emulator: PlatformEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with recording_bridge(platform_emulator, tmp_path, watch=CrashAfter(60)) as bridge:
        agent = bridge.platform.create_agent(behaviour={"mode": "echo"}, first_message="Hi there.")
        with caplog.at_level(logging.ERROR, logger="bridge.call"):
            res = await bridge.call(agent, CallScript(max_duration_s=30), speed=SPEED)
        stream = res.stream
        assert stream is not None and stream.ended_by == "bridge"
        assert stream.close_code == 1011  # the crash path closed the stream
        assert any(r.getMessage() == "call.task_crashed" for r in caplog.records)
        rec = await ended(bridge, res)
        assert rec.frames >= 55 * FRAME
