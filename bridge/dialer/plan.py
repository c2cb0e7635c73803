"""What the caller of ``bridge call`` does, from command-line choices (pure).

The default is a short conversation: listen to the agent's greeting until it is over,
then ``turns`` times say something (a speech-like burst, or a tone) and wait for the
agent's reply, then hang up.  ``barge_in`` makes the first turn talk over the greeting
instead of waiting for its end; ``dtmf`` presses keys once the greeting is over (or cut);
``hangup_after_s`` hangs up at that call time whatever the script is doing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bridge.emulator.twilio.script import (
    DTMF_DIGITS,
    BargeIn,
    CallerHangsUp,
    CallScript,
    Press,
    Step,
    Talk,
    WaitForAgent,
)
from bridge.emulator.twilio.sources import speech_like, tone
from bridge.errors import InputError

GREETING_WAIT_S = 6.0  # an agent without a greeting: the caller speaks first after this
REPLY_WAIT_S = 10.0
GREETING_QUIET_S = 0.6  # the agent's turn is over after this much silence
REPLY_QUIET_S = 0.8  # an echo agent waits ~0.5 s of caller silence, then streams the reply
BARGE_AFTER_S = 0.8  # into the greeting
SAFETY_S = 120.0  # no script runs longer, whatever the agent does


@dataclass(frozen=True)
class CallPlan:
    turns: int = 2
    talk_s: float = 1.5
    tone_hz: float | None = None  # None: speech-like noise
    barge_in: bool = False
    dtmf: str = ""
    hangup_after_s: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.turns <= 20:
            raise InputError("--turns", f"expected 0-20, got {self.turns}")
        if not (math.isfinite(self.talk_s) and 0.2 <= self.talk_s <= 30):
            raise InputError("--talk", f"expected seconds 0.2-30, got {self.talk_s:g}")
        if self.tone_hz is not None and not 50 <= self.tone_hz <= 3900:
            raise InputError(
                "--tone", f"expected Hz 50-3900 (the phone band), got {self.tone_hz:g}"
            )
        if any(d not in DTMF_DIGITS for d in self.dtmf):
            raise InputError("--dtmf", f"expected keys from 0-9*#A-D, got {self.dtmf!r}")
        if self.barge_in and self.turns == 0:
            raise InputError("--barge-in", "needs at least one turn (--turns 1 or more)")
        if self.hangup_after_s is not None and not 0 < self.hangup_after_s <= SAFETY_S:
            raise InputError(
                "--hangup-after",
                f"expected seconds in (0, {SAFETY_S:g}], got {self.hangup_after_s:g}",
            )

    def utterance(self, turn: int) -> bytes:
        """What the caller says on ``turn`` (different noise each turn, same length)."""
        if self.tone_hz is not None:
            return tone(self.tone_hz, self.talk_s, dbfs=-12.0)
        return speech_like(self.talk_s, seed=turn)


def build_script(plan: CallPlan) -> CallScript:
    steps: list[Step] = []
    first = 0
    if plan.barge_in:
        steps.append(
            BargeIn(
                plan.utterance(0), after_s=BARGE_AFTER_S, timeout_s=GREETING_WAIT_S, label="turn 1"
            )
        )
        first = 1
    else:
        steps.append(WaitForAgent(timeout_s=GREETING_WAIT_S, quiet_s=GREETING_QUIET_S))
    if plan.dtmf:
        steps.append(Press(plan.dtmf))
    if plan.barge_in:
        steps.append(WaitForAgent(timeout_s=REPLY_WAIT_S, quiet_s=REPLY_QUIET_S))
    for turn in range(first, plan.turns):
        steps.append(Talk(plan.utterance(turn), f"turn {turn + 1}"))
        steps.append(WaitForAgent(timeout_s=REPLY_WAIT_S, quiet_s=REPLY_QUIET_S))
    steps.append(CallerHangsUp())
    return CallScript.of(*steps, hangup_at=plan.hangup_after_s, max_duration_s=SAFETY_S)
