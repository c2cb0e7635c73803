"""Voice-to-voice latency of each agent turn, measured at the bridge (pure).

The session feeds a :class:`TurnLatency` what it sees, each with its own clock's time:
every caller frame (:meth:`~TurnLatency.caller_frame`, through the energy VAD of
:mod:`bridge.audio.vad`), agent audio forwarded to the caller, the driver's writes to
Twilio, mark echoes and barge-ins.  From the moment the caller stopped speaking (the
arrival of their last speech frame) a turn measures:

* ``agent_audio``: the agent's first audio of its reply reached the bridge;
* ``sent``: its first byte was written to the Twilio socket;
* ``heard``: the caller started hearing it.  The audio that opens a turn is marked at
  once; Twilio echoes that mark when its playout (8000 bytes a second) reaches it, so
  the first byte started playing ``n / 8000`` s before the echo arrived (``n``: the
  bytes of that audio).  Never earlier than ``sent``.  It is late by Twilio → bridge
  transit (the echo's trip), which the bridge cannot see.

and a barge-in (:meth:`~TurnLatency.interrupted`) measures caller speech start →
``clear`` written to Twilio.

Which agent audio is a reply: the first forwarded after the caller stopped.  The VAD
decides "stopped" only after its hangover, so audio that arrives while the caller is
quiet but the hangover runs opens a *tentative* turn, kept if the silence turns out to
be the end, dropped if the caller goes on.  An agent that talked through the caller's
speech without being interrupted is not replying to it: no turn for that utterance.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from bridge.audio.vad import CallerVad, SpeechEnded, SpeechStarted
from bridge.b64 import decode_strict
from bridge.store.transcripts import (
    INTERRUPTION,
    STAGES,
    AgentTurn,
    Interrupted,
    LatencySummary,
    StageStats,
)

ULAW_BYTES_PER_S: Final = 8000
MAX_TURNS: Final = 2000  # measured per call (and barge-ins); beyond: counted, not measured
# An interruption this long after the caller started speaking is not their barge-in
# (the platform interrupted for a reason of its own): no delay is measured.
MAX_BARGE_S: Final = 5.0


@dataclass(slots=True, eq=False)
class _Turn:
    stop: float  # the caller stopped speaking
    agent_audio: float
    mark: str
    nbytes: int  # bytes of the opening audio, all before its mark
    sent: float | None = None
    heard: float | None = None
    tentative: bool = False


@dataclass(slots=True, eq=False)
class _Barge:
    speech: float | None  # the caller started speaking
    queued: float  # clear queued
    sent: float | None = None


class TurnLatency:
    def __init__(self, vad: CallerVad, *, max_turns: int = MAX_TURNS) -> None:
        self.vad = vad
        self._max = max_turns
        self.turns: list[_Turn] = []
        self.barges: list[_Barge] = []
        self.dropped = 0
        self._stopped: float | None = None  # caller stopped, no reply yet
        self._speech_start: float | None = None  # of the utterance in progress / last
        self._talk_over = False  # agent audio forwarded during the caller's speech
        self._open: _Turn | None = None  # the newest turn, until heard or superseded
        self._unwritten: list[_Turn | _Barge] = []  # waiting for the driver's write

    # ------------------------------------------------------------------ inputs

    def caller_frame(self, payload_b64: str, now: float) -> None:
        try:
            ulaw = decode_strict(payload_b64)  # what the session accepts, on every Python
        except ValueError:
            return  # the session counts it as garbage
        ev = self.vad.frame(ulaw, now)
        if ev is None:
            return
        if isinstance(ev, SpeechStarted):
            self._speech_start = ev.at
            self._stopped = None
            self._talk_over = False
            if self._open is not None and self._open.tentative:
                self._forget(self._open)  # the caller went on: not a reply
            return
        assert isinstance(ev, SpeechEnded)
        t = self._open
        if t is not None and t.tentative:
            if t.stop == ev.at:
                t.tentative = False  # the pause was the end: the reply stands
                self._stopped = None
            else:
                self._forget(t)
                self._stopped = None if self._talk_over else ev.at
        elif not self._talk_over:
            self._stopped = ev.at
        self._talk_over = False

    def agent_audio(self, now: float, mark: str, nbytes: int) -> bool:
        """Agent audio forwarded to the caller; True when it opens a turn (mark it now)."""
        vad = self.vad
        if vad.in_speech:
            quiet = vad.quiet_since
            if quiet is None:  # the caller is talking and the agent too
                self._talk_over = True
                return False
            if self._talk_over or (self._open is not None and self._open.tentative):
                return False
            return self._start(quiet, now, mark, nbytes, tentative=True)
        stopped = self._stopped
        if stopped is None:
            return False
        self._stopped = None
        return self._start(stopped, now, mark, nbytes, tentative=False)

    def interrupted(self, now: float) -> None:
        """The agent was interrupted: ``clear`` is queued for Twilio."""
        start = self._speech_start
        recent = start is not None and now - start <= MAX_BARGE_S
        speech = start if recent and (self.vad.in_speech or self._stopped is not None) else None
        b = _Barge(speech, now)
        if len(self.barges) < self._max:
            self.barges.append(b)
        # The unsent audio went with the clear: a turn waiting for its write never goes.
        self._unwritten = [x for x in self._unwritten if isinstance(x, _Barge)]
        self._unwritten.append(b)
        self._talk_over = False
        if self._open is not None:
            self._open = None  # its mark was forgotten with the clear: never heard

    def written(self, now: float) -> None:
        """The driver wrote the queued frames to Twilio."""
        for item in self._unwritten:
            item.sent = now
        self._unwritten.clear()

    def mark_echoed(self, name: str, now: float) -> None:
        t = self._open
        if t is None or t.mark != name:
            return
        self._open = None
        started = now - t.nbytes / ULAW_BYTES_PER_S
        t.heard = max(started, t.sent) if t.sent is not None else started

    @property
    def awaiting_write(self) -> bool:
        return bool(self._unwritten)

    # ------------------------------------------------------------------ outputs

    def entries(self, origin: float) -> tuple[list[AgentTurn], list[Interrupted]]:
        """Turns and barge-ins as transcript entries (``t`` relative to ``origin``)."""
        turns = [
            AgentTurn(
                t=_round_s(t.stop - origin),
                agent_audio_ms=_ms(t.agent_audio - t.stop),
                sent_ms=_ms(t.sent - t.stop) if t.sent is not None else None,
                heard_ms=_ms(t.heard - t.stop) if t.heard is not None else None,
            )
            for t in self.turns
            if not t.tentative
        ]
        barges = [
            Interrupted(
                t=_round_s((b.speech if b.speech is not None else b.queued) - origin),
                clear_ms=_ms(b.sent - b.speech)
                if b.sent is not None and b.speech is not None
                else None,
            )
            for b in self.barges
        ]
        return turns, barges

    def observations(self) -> Iterator[tuple[str, float]]:
        """(stage, seconds) of every completed stage, for the histograms."""
        for t in self.turns:
            if t.tentative:
                continue
            yield STAGES[0], t.agent_audio - t.stop
            if t.sent is not None:
                yield STAGES[1], t.sent - t.stop
            if t.heard is not None:
                yield STAGES[2], t.heard - t.stop
        for b in self.barges:
            if b.sent is not None and b.speech is not None:
                yield INTERRUPTION, b.sent - b.speech

    def summary(self) -> LatencySummary | None:
        turns, barges = self.entries(0.0)
        if not turns and not barges:
            return None
        return LatencySummary(
            turns=len(turns),
            agent_audio=_stats([t.agent_audio_ms for t in turns]),
            sent=_stats([t.sent_ms for t in turns]),
            heard=_stats([t.heard_ms for t in turns]),
            interruption=_stats([b.clear_ms for b in barges]),
        )

    # ------------------------------------------------------------------ helpers

    def _start(self, stop: float, now: float, mark: str, nbytes: int, *, tentative: bool) -> bool:
        t = _Turn(stop, now, mark, nbytes, tentative=tentative)
        if len(self.turns) >= self._max:
            self.dropped += 1
            return False
        self.turns.append(t)
        self._open = t
        self._unwritten.append(t)
        return True

    def _forget(self, t: _Turn) -> None:
        if t in self.turns:
            self.turns.remove(t)
        if t in self._unwritten:
            self._unwritten.remove(t)
        if self._open is t:
            self._open = None


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _round_s(seconds: float) -> float:
    return round(max(0.0, seconds), 3)


def _stats(values: list[float | None]) -> StageStats | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return StageStats(n=len(known), median_ms=statistics.median(known), worst_ms=max(known))
