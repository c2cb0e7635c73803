"""Who picks up an outbound call the REST emulator places (pure: plans, no I/O).

A callee mode decides the pre-answer outcome, what the far end says once the stream is
up (a :class:`~.script.CallScript`), and what answering-machine detection (AMD) reports:

=============  ==========================================  ===========================
mode           on the line                                 AnsweredBy (Enable / DetectMessageEnd)
=============  ==========================================  ===========================
``human``      "Hello?" (0.8 s), then answers each agent   ``human`` / ``human`` after 2.0 s
               turn (1.5 s, 1.2 s), then hangs up
``voicemail``  4 s greeting, 0.5 s beep, then silence      ``machine_start`` after 2.5 s /
               (the recording) until it hangs up at 30 s   ``machine_end_beep`` after 4.5 s
``no-answer``  rings until ``Timeout`` (default 60 s)      —
``busy``       busy at once                                —
``failed``     fails at once (unreachable number)          —
=============  ==========================================  ===========================

Synchronous AMD (``MachineDetection`` without ``AsyncAmd=true``) holds the TwiML
request until detection is done, so the stream starts that far into the callee's
audio; with ``AsyncAmd=true`` the TwiML is fetched at once and the result goes to
``AsyncAmdStatusCallback``.  Times are call-time seconds after the answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bridge.emulator.twilio.script import (
    FRAME_BYTES,
    CallerHangsUp,
    CallScript,
    Pause,
    Step,
    Talk,
    WaitForAgent,
)
from bridge.emulator.twilio.sources import beep, speech_like
from bridge.errors import InputError


class CalleeMode(enum.StrEnum):
    HUMAN = "human"
    VOICEMAIL = "voicemail"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"


def callee_mode(value: str) -> CalleeMode:
    try:
        return CalleeMode(value)
    except ValueError:
        modes = ", ".join(m.value for m in CalleeMode)
        raise InputError("mode", f"expected one of {modes}, got {value!r}") from None


@dataclass(frozen=True)
class AmdPlan:
    """What answering-machine detection reports, when, and where."""

    answered_by: str
    detection_s: float
    asynchronous: bool
    callback: str | None = None  # AsyncAmdStatusCallback
    callback_method: str = "POST"


@dataclass(frozen=True)
class CalleePlan:
    answer: str  # answer | busy | no-answer | failed (CallSpec.answer)
    script: CallScript
    amd: AmdPlan | None


_HUMAN_DETECT_S = 2.0
_MACHINE_START_S = 2.5
_GREETING_S = 4.0
_BEEP_S = 0.5
_VOICEMAIL_MAX_S = 30.0


def _skip(audio: bytes, seconds: float) -> bytes:
    """``audio`` without its first ``seconds`` (whole frames)."""
    n = int(seconds * 50) * FRAME_BYTES
    return audio[n:]


def callee_plan(
    mode: CalleeMode,
    *,
    machine_detection: str | None = None,
    async_amd: bool = False,
    amd_callback: str | None = None,
    amd_callback_method: str = "POST",
    seed: int = 0,
) -> CalleePlan:
    """The plan for one outbound call; ``machine_detection``: None | Enable | DetectMessageEnd."""
    if machine_detection not in (None, "Enable", "DetectMessageEnd"):
        raise InputError(
            "MachineDetection", f"expected Enable or DetectMessageEnd, got {machine_detection!r}"
        )
    if mode in (CalleeMode.NO_ANSWER, CalleeMode.BUSY, CalleeMode.FAILED):
        return CalleePlan(mode.value, CallScript(), None)
    amd: AmdPlan | None = None
    if mode is CalleeMode.HUMAN:
        if machine_detection:
            amd = AmdPlan("human", _HUMAN_DETECT_S, async_amd, amd_callback, amd_callback_method)
        skipped = amd.detection_s if amd and not async_amd else 0.0
        hello = _skip(speech_like(0.8, seed=seed), max(0.0, skipped - 0.4))
        steps: list[Step] = []
        if skipped < 0.4:
            steps.append(Pause(0.4 - skipped))
        if hello:
            steps.append(Talk(hello, "hello"))
        for i, length in enumerate((1.5, 1.2)):
            steps += [
                WaitForAgent(timeout_s=15.0, quiet_s=0.6),
                Talk(speech_like(length, seed=seed + 1 + i), f"reply {i + 1}"),
            ]
        steps += [WaitForAgent(timeout_s=15.0, quiet_s=0.6), CallerHangsUp()]
        return CalleePlan("answer", CallScript(tuple(steps), max_duration_s=120.0), amd)
    # Voicemail: greeting, beep, then it records silence until its limit.
    if machine_detection == "Enable":
        amd = AmdPlan(
            "machine_start", _MACHINE_START_S, async_amd, amd_callback, amd_callback_method
        )
    elif machine_detection == "DetectMessageEnd":
        amd = AmdPlan(
            "machine_end_beep", _GREETING_S + _BEEP_S, async_amd, amd_callback, amd_callback_method
        )
    skipped = amd.detection_s if amd and not async_amd else 0.0
    greeting = _skip(speech_like(_GREETING_S, seed=seed) + beep(_BEEP_S), skipped)
    steps = [Talk(greeting, "greeting")] if greeting else []
    script = CallScript(tuple(steps), hangup_at=_VOICEMAIL_MAX_S - skipped, max_duration_s=120.0)
    return CalleePlan("answer", script, amd)
