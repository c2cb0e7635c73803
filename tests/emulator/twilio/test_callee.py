"""Outbound callee modes: what they say and what answering-machine detection reports."""

from __future__ import annotations

import pytest

from bridge.emulator.twilio.callee import CalleeMode, callee_mode, callee_plan
from bridge.emulator.twilio.script import CallerHangsUp, Talk, WaitForAgent
from bridge.errors import InputError


def test_human_says_hello_then_answers_each_turn() -> None:
    plan = callee_plan(CalleeMode.HUMAN)
    assert plan.answer == "answer" and plan.amd is None
    kinds = [type(s) for s in plan.script.steps]
    assert kinds[-1] is CallerHangsUp and kinds.count(WaitForAgent) == 3
    talks = [s for s in plan.script.steps if isinstance(s, Talk)]
    assert [t.label for t in talks] == ["hello", "reply 1", "reply 2"]
    assert len(talks[0].audio) == 6400  # 0.8 s


def test_voicemail_greeting_then_beep_and_amd_variants() -> None:
    plain = callee_plan(CalleeMode.VOICEMAIL)
    (greeting,) = plain.script.steps
    assert isinstance(greeting, Talk) and len(greeting.audio) == 36000  # 4 s + 0.5 s beep
    assert plain.script.hangup_at == 30.0

    sync_end = callee_plan(CalleeMode.VOICEMAIL, machine_detection="DetectMessageEnd")
    assert sync_end.amd is not None and sync_end.amd.answered_by == "machine_end_beep"
    assert not sync_end.amd.asynchronous and sync_end.amd.detection_s == 4.5
    assert sync_end.script.steps == ()  # the stream starts after the beep
    assert sync_end.script.hangup_at == pytest.approx(25.5)

    sync_start = callee_plan(CalleeMode.VOICEMAIL, machine_detection="Enable")
    assert sync_start.amd is not None and sync_start.amd.answered_by == "machine_start"
    (rest,) = sync_start.script.steps
    assert isinstance(rest, Talk) and rest.audio == greeting.audio[2 * 8000 + 4000 :]

    asynchronous = callee_plan(
        CalleeMode.VOICEMAIL,
        machine_detection="DetectMessageEnd",
        async_amd=True,
        amd_callback="https://b/amd",
    )
    assert asynchronous.amd is not None and asynchronous.amd.callback == "https://b/amd"
    assert asynchronous.script.steps == plain.script.steps  # nothing skipped


def test_human_amd() -> None:
    plan = callee_plan(CalleeMode.HUMAN, machine_detection="Enable")
    assert plan.amd is not None and plan.amd.answered_by == "human"
    assert not any(isinstance(s, Talk) and s.label == "hello" for s in plan.script.steps)


@pytest.mark.parametrize("mode", [CalleeMode.BUSY, CalleeMode.NO_ANSWER, CalleeMode.FAILED])
def test_unanswered_modes(mode: CalleeMode) -> None:
    plan = callee_plan(mode, machine_detection="Enable")
    assert plan.answer == mode.value and plan.amd is None


def test_bad_names_are_input_errors() -> None:
    with pytest.raises(InputError, match="mode"):
        callee_mode("robot")
    with pytest.raises(InputError, match="MachineDetection"):
        callee_plan(CalleeMode.HUMAN, machine_detection="Maybe")
