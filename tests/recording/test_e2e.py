"""Recordings end to end: the synthetic caller → the bridge → the platform emulator.

The recording is compared sample by sample with what the Twilio emulator's caller
recorded hearing on its own playout clock, and with what it sent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import BargeIn, CallerHangsUp, CallScript, WaitForAgent
from tests.e2e.conftest import script_time, tone_ulaw
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.recording.conftest import FRAME, check_heard, finalised, pcm, recording_bridge

LONG_GREETING = (
    "Hello and welcome. This greeting goes on for quite a while, so that there is "
    "plenty of time to talk over it and cut it short."
)


async def test_the_recording_is_what_the_caller_heard(
    platform_emulator: PlatformEmulator, tmp_path: Path
) -> None:
    async with recording_bridge(platform_emulator, tmp_path) as bridge:
        agent = bridge.platform.create_agent(
            behaviour={"mode": "echo"}, first_message=LONG_GREETING
        )
        tone = tone_ulaw(0.8)
        script = CallScript.of(
            BargeIn(tone, after_s=0.5),
            WaitForAgent(timeout_s=10, quiet_s=0.6),
            CallerHangsUp(),
            max_duration_s=30,
        )
        # Real time: the emulated agent paces its speech on the wall clock.
        res = await bridge.call(agent, script, speed=1.0)
        assert res.outcome is Outcome.COMPLETED, res.reason
        rec = await finalised(bridge, res.call_sid)

    stream = res.stream
    assert stream is not None and stream.started_at is not None
    (clear_at,) = stream.clears  # the barge-in cut the greeting
    # Agent channel: every heard segment where it played (within one frame), and
    # nothing else: the greeting's unplayed rest is absent.
    worst = check_heard(res, rec)
    assert worst <= FRAME
    cut = round((clear_at - stream.started_at) * 8000)
    greeting = rec.right[:cut]
    assert np.count_nonzero(greeting) > 0.3 * 8000  # some greeting was heard before it
    heard_after = sum(len(s.data) for s in stream.heard if s.start >= clear_at)
    assert heard_after >= 0.7 * 8000  # the echo of the tone, and only it, after the clear

    # Caller channel: silence, then the tone from the very frame it was sent in.
    talk = script_time(res, "barge-in")
    (k,) = [f.offset // FRAME for f in stream.frames if f.t == talk]
    want = np.zeros(len(stream.frames) * FRAME, dtype="<i2")
    want[k * FRAME : k * FRAME + len(tone)] = pcm(tone)
    assert len(rec.left) >= len(want)
    assert np.array_equal(rec.left[: len(want)], want)
    assert not rec.left[len(want) :].any()
