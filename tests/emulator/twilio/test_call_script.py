"""The caller's script, one 20 ms tick at a time (pure)."""

from __future__ import annotations

import pytest

from bridge.emulator.twilio.script import (
    FRAME_S,
    SILENCE_FRAME,
    At,
    BargeIn,
    CallerHangsUp,
    CallScript,
    Pause,
    Press,
    ScriptRunner,
    Talk,
    Tick,
    WaitForAgent,
)
from bridge.errors import InputError


def run(
    script: CallScript, agent: list[bool] | None = None, ticks: int = 200, t0: float = 3.0
) -> list[Tick]:
    """Tick ``script`` from call time ``t0``; ``agent[k]`` says whether the agent plays at tick k."""
    r = ScriptRunner(script)
    out = []
    for k in range(ticks):
        tick = r.tick(t0 + k * FRAME_S, bool(agent and k < len(agent) and agent[k]))
        out.append(tick)
        if tick.hangup:
            break
    return out


def test_talk_is_sliced_into_frames_and_padded() -> None:
    ticks = run(CallScript.of(Talk(b"\x01" * 400), CallerHangsUp()))
    assert [t.frame for t in ticks[:3]] == [
        b"\x01" * 160,
        b"\x01" * 160,
        b"\x01" * 80 + b"\xff" * 80,
    ]
    assert ticks[3].hangup == "script" and len(ticks) == 4


def test_pause_and_at_count_from_the_first_tick() -> None:
    ticks = run(
        CallScript.of(
            Pause(0.1), Talk(b"\x02" * 160), At(0.5), Talk(b"\x03" * 160), CallerHangsUp()
        )
    )
    frames = [t.frame for t in ticks]
    assert frames.index(b"\x02" * 160) == 5  # after 0.1 s of silence
    assert frames.index(b"\x03" * 160) == 25  # at script time 0.5, not call time 0.5
    assert all(f == SILENCE_FRAME for f in frames[6:25])


def test_press_spaces_digits_and_hangs_up_with_the_last() -> None:
    ticks = run(CallScript.of(Press("1#", gap_s=0.1), CallerHangsUp()))
    digits = [(k, t.digits) for k, t in enumerate(ticks) if t.digits]
    assert digits == [(0, ("1",)), (5, ("#",))]
    assert ticks[-1].hangup == "script" and ticks[-1].digits == ("#",)


def test_press_rejects_non_dtmf() -> None:
    with pytest.raises(InputError):
        Press("12x")


def test_wait_for_agent_waits_for_its_turn_to_end() -> None:
    agent = [False] * 10 + [True] * 20 + [False] * 100
    ticks = run(
        CallScript.of(WaitForAgent(quiet_s=0.2), Talk(b"\x04" * 160), CallerHangsUp()), agent
    )
    frames = [t.frame for t in ticks]
    # agent audible for ticks 10..29, quiet from 30; the reply starts 0.2 s (10 ticks) later
    assert frames.index(b"\x04" * 160) == 40


def test_wait_for_agent_times_out_and_notes_it() -> None:
    r = ScriptRunner(CallScript.of(WaitForAgent(timeout_s=0.1), CallerHangsUp()))
    ticks = [r.tick(k * FRAME_S, False) for k in range(10)]
    assert next(k for k, t in enumerate(ticks) if t.hangup) == 5
    assert [e.kind for e in r.events] == ["timeout", "hangup"]


def test_barge_in_talks_over_the_agent_after_a_delay() -> None:
    r = ScriptRunner(CallScript.of(BargeIn(b"\x05" * 320, after_s=0.1), CallerHangsUp()))
    frames = []
    for k in range(30):
        tick = r.tick(k * FRAME_S, k >= 5)
        if tick.hangup:
            break
        frames.append(tick.frame)
    assert frames.index(b"\x05" * 160) == 10 and frames[11] == b"\x05" * 160
    assert [e.kind for e in r.events][:2] == ["barge-in", "talk-start"]


def test_barge_in_resets_when_the_agent_stops_and_times_out() -> None:
    r = ScriptRunner(
        CallScript.of(BargeIn(b"\x05" * 160, after_s=0.1, timeout_s=0.3), CallerHangsUp())
    )
    # audible in bursts of 3 ticks (60 ms < after_s): never long enough to barge in
    ticks = [r.tick(k * FRAME_S, k % 4 != 3) for k in range(20)]
    assert all(t.frame == SILENCE_FRAME for t in ticks)
    assert [e.kind for e in r.events] == ["timeout", "hangup"]


def test_hangup_at_and_max_duration_win_over_steps() -> None:
    ticks = run(CallScript.of(Talk(b"\x06" * 16000), hangup_at=0.1))
    assert len(ticks) == 6 and ticks[-1].hangup == "hangup_at"
    ticks = run(CallScript(max_duration_s=0.04))
    assert len(ticks) == 3 and ticks[-1].hangup == "max_duration"


def test_no_steps_means_silence_until_the_other_side_ends() -> None:
    ticks = run(CallScript(), ticks=50)
    assert len(ticks) == 50 and all(t.frame == SILENCE_FRAME and not t.hangup for t in ticks)
