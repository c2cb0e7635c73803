"""What the synthetic caller does on the line: a script of steps, run one frame at a time (pure).

A real caller's line carries audio every 20 ms whether they speak or not, so the script
is evaluated once per outgoing frame: :meth:`ScriptRunner.tick` gets the call time and
whether the agent's audio is playing, and answers with the 160 mu-law bytes to send,
any DTMF digits to send with it, and whether to hang up.  Script times (``At``,
``hangup_at``, ``max_duration_s``) count from the first tick, i.e. from the start of
the call's first stream, in call-time seconds (already scaled by the speed factor), so a
script means the same at 1× and at 50×.  Recorded events carry call time.

Steps (run in order):

* ``Talk(audio)`` — speak mu-law ``audio``; the next step starts when it has been sent.
* ``Pause(seconds)`` — silence.   ``At(t)`` — silence until script time ``t``.
* ``Press(digits, gap_s)`` — send ``dtmf`` events, one every ``gap_s``.
* ``WaitForAgent(timeout_s, quiet_s)`` — silence until the agent has spoken and then been
  quiet for ``quiet_s`` (its turn is over), or ``timeout_s`` passed.
* ``BargeIn(audio, after_s, timeout_s)`` — wait until the agent has been audible for
  ``after_s``, then talk over it; skipped (noted) if it never speaks within ``timeout_s``.
* ``CallerHangsUp()`` — hang up now.

``CallScript.hangup_at`` hangs up at a fixed time whatever the step; ``max_duration_s``
is the safety net.  When the steps run out the caller stays on the line in silence until
the other side ends the call.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import InputError

FRAME_BYTES = 160
FRAME_S = 0.02
SILENCE_FRAME = b"\xff" * FRAME_BYTES
DTMF_DIGITS = frozenset("0123456789*#ABCD")
_EPS = 1e-9  # call times are sums of 20 ms steps: compare thresholds with a little slack


@dataclass(frozen=True)
class Talk:
    audio: bytes
    label: str = ""


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class At:
    t: float


@dataclass(frozen=True)
class Press:
    digits: str
    gap_s: float = 0.25

    def __post_init__(self) -> None:
        bad = [d for d in self.digits if d not in DTMF_DIGITS]
        if not self.digits or bad:
            raise InputError("Press.digits", f"expected digits from 0-9*#A-D, got {self.digits!r}")


@dataclass(frozen=True)
class WaitForAgent:
    timeout_s: float = 15.0
    quiet_s: float = 0.6


@dataclass(frozen=True)
class BargeIn:
    audio: bytes
    after_s: float = 0.5
    timeout_s: float = 15.0
    label: str = "barge-in"


@dataclass(frozen=True)
class CallerHangsUp:
    """The caller hangs up now."""


Step = Talk | Pause | At | Press | WaitForAgent | BargeIn | CallerHangsUp


@dataclass(frozen=True)
class CallScript:
    steps: tuple[Step, ...] = ()
    hangup_at: float | None = None
    max_duration_s: float = 300.0

    @classmethod
    def of(
        cls, *steps: Step, hangup_at: float | None = None, max_duration_s: float = 300.0
    ) -> CallScript:
        return cls(tuple(steps), hangup_at, max_duration_s)


@dataclass(frozen=True, slots=True)
class ScriptEvent:
    t: float
    kind: str  # talk-start | talk-end | dtmf | barge-in | timeout | hangup
    detail: str = ""


@dataclass(slots=True)
class Tick:
    """One frame's worth of script.  Not frozen: built 50 times a second per call, and a
    frozen dataclass costs three times as much to build."""

    frame: bytes
    digits: tuple[str, ...] = ()
    hangup: str | None = None  # why the caller hangs up now


class ScriptRunner:
    """Runs one :class:`CallScript`; keep one per call (it survives a second stream)."""

    def __init__(self, script: CallScript) -> None:
        self.script = script
        self.events: list[ScriptEvent] = []
        self.index = 0
        self._started: float | None = None  # when the current step started
        self._talk: bytes | None = None
        self._talk_label = ""
        self._offset = 0
        self._pressed = 0
        self._seen_agent = False
        self._since: float | None = None  # quiet-since (WaitForAgent) / audible-since (BargeIn)
        self.origin: float | None = None  # call time of the first tick: script time 0
        self.hung_up: str | None = None

    @property
    def done(self) -> bool:
        return self.index >= len(self.script.steps)

    def tick(self, now: float, agent_playing: bool) -> Tick:
        """``now`` is call time; script times (``At``, ``hangup_at``) count from the first tick."""
        s = self.script
        if self.hung_up is not None:
            return Tick(SILENCE_FRAME, (), self.hung_up)
        if self.origin is None:
            self.origin = now
        rel = now - self.origin + _EPS
        if s.hangup_at is not None and rel >= s.hangup_at:
            return self._hangup(now, "hangup_at")
        if rel >= s.max_duration_s:
            return self._hangup(now, "max_duration")
        digits: list[str] = []
        while True:
            if self._talk is not None:
                return Tick(self._next_talk_frame(now), tuple(digits))
            if self.done:
                return Tick(SILENCE_FRAME, tuple(digits))
            step = s.steps[self.index]
            if self._started is None:
                self._started = now
            elapsed = now - self._started + _EPS
            if isinstance(step, Talk):
                self._start_talk(now, step.audio, step.label or f"step {self.index}")
                continue
            if isinstance(step, Pause):
                if elapsed >= step.seconds:
                    self._advance()
                    continue
            elif isinstance(step, At):
                if rel >= step.t:
                    self._advance()
                    continue
            elif isinstance(step, Press):
                while self._pressed < len(step.digits) and elapsed >= self._pressed * step.gap_s:
                    digit = step.digits[self._pressed]
                    digits.append(digit)
                    self.events.append(ScriptEvent(now, "dtmf", digit))
                    self._pressed += 1
                if self._pressed == len(step.digits):
                    self._advance()
                    continue
            elif isinstance(step, WaitForAgent):
                if self._wait_for_agent(step, now, agent_playing):
                    self._advance()
                    continue
            elif isinstance(step, BargeIn):
                if agent_playing:
                    self._since = now if self._since is None else self._since
                    if now - self._since + _EPS >= step.after_s:
                        self.events.append(ScriptEvent(now, "barge-in", step.label))
                        self._start_talk(now, step.audio, step.label)
                        continue
                else:
                    self._since = None
                if elapsed >= step.timeout_s:
                    self.events.append(ScriptEvent(now, "timeout", f"BargeIn step {self.index}"))
                    self._advance()
                    continue
            else:
                return self._hangup(now, "script", digits)
            return Tick(SILENCE_FRAME, tuple(digits))

    def _wait_for_agent(self, step: WaitForAgent, now: float, agent_playing: bool) -> bool:
        assert self._started is not None
        if agent_playing:
            self._seen_agent = True
            self._since = None
        elif self._seen_agent:
            self._since = now if self._since is None else self._since
            if now - self._since + _EPS >= step.quiet_s:
                return True
        if now - self._started + _EPS >= step.timeout_s:
            self.events.append(ScriptEvent(now, "timeout", f"WaitForAgent step {self.index}"))
            return True
        return False

    def _start_talk(self, now: float, audio: bytes, label: str) -> None:
        self._talk, self._talk_label, self._offset = audio, label, 0
        self.events.append(ScriptEvent(now, "talk-start", label))

    def _next_talk_frame(self, now: float) -> bytes:
        assert self._talk is not None
        frame = self._talk[self._offset : self._offset + FRAME_BYTES]
        self._offset += FRAME_BYTES
        if self._offset >= len(self._talk):
            # The talk ends with this frame; the next step starts on the next tick.
            self.events.append(ScriptEvent(now + FRAME_S, "talk-end", self._talk_label))
            self._talk = None
            self._advance()
        if len(frame) < FRAME_BYTES:
            frame += SILENCE_FRAME[: FRAME_BYTES - len(frame)]
        return frame

    def _advance(self) -> None:
        self.index += 1
        self._started = None
        self._pressed = 0
        self._seen_agent = False
        self._since = None

    def _hangup(self, now: float, why: str, digits: list[str] | None = None) -> Tick:
        self.hung_up = why
        self.events.append(ScriptEvent(now, "hangup", why))
        return Tick(SILENCE_FRAME, tuple(digits or ()), why)
