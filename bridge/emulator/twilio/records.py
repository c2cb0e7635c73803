"""What a synthetic call recorded: typed, live while the call runs, final after.

All times are call-time seconds since the call began (see :mod:`.clock`); the matching
monotonic time is ``result.t0 + t / result.speed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.emulator.twilio.playout import HeardSegment, MarkEcho, Playout
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import ScriptEvent
from bridge.emulator.twilio.twiml import Connect, Dial, Pause, Play, Redirect, Reject, Say, Verb


@dataclass(frozen=True, slots=True)
class Sent:
    """A non-media message the caller sent on the stream (media are in ``frames``)."""

    t: float
    event: str  # connected | start | dtmf | mark | stop
    seq: int  # 0 for connected, which has no sequenceNumber
    detail: str = ""  # digit, mark name


@dataclass(slots=True)
class SentFrame:
    """A media frame sent at ``t``: bytes ``offset``…``offset+size`` of the inbound audio.

    Not frozen (nor :class:`Received`): one is recorded per frame, and a frozen dataclass
    costs three times as much to build; treat both as read-only all the same.
    """

    t: float
    offset: int
    size: int


@dataclass(slots=True)
class Received:
    """A message the server sent on the stream, in arrival order."""

    t: float
    event: str  # media | mark | clear
    name: str = ""  # mark name
    size: int = 0  # media: decoded bytes


@dataclass
class StreamRecord:
    url: str  # as written in the TwiML (what the upgrade is signed over)
    connect_url: str  # where the emulator connected
    stream_sid: str
    custom_parameters: dict[str, str]
    started_at: float | None = None  # when `start` was sent
    ended_at: float | None = None
    ended_by: str = ""  # caller | bridge | rest | error | handshake
    error: str | None = None
    close_code: int | None = None
    sent: list[Sent] = field(default_factory=list)
    frames: list[SentFrame] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    marks: list[MarkEcho] = field(default_factory=list)
    playout: Playout = field(default_factory=Playout)

    @property
    def heard(self) -> list[HeardSegment]:
        return self.playout.segments

    @property
    def clears(self) -> list[float]:
        return self.playout.clears

    def heard_audio(self) -> bytes:
        return self.playout.heard_audio()

    def inbound_audio_sent(self) -> int:
        return sum(f.size for f in self.frames)

    def summary(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "stream_sid": self.stream_sid,
            "custom_parameters": self.custom_parameters,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
            "error": self.error,
            "close_code": self.close_code,
            "frames_sent": len(self.frames),
            "sent": [[s.t, s.event, s.detail] for s in self.sent],
            "received": {
                "media_messages": sum(1 for r in self.received if r.event == "media"),
                "media_bytes": sum(r.size for r in self.received),
                "marks": [r.name for r in self.received if r.event == "mark"],
                "clears": len(self.playout.clears),
            },
            "heard_bytes": sum(len(s.data) for s in self.heard),
            "mark_echoes": [[m.name, m.echoed, m.cleared] for m in self.marks],
        }


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """One TwiML request: the webhook, a redirect, a ``<Connect action>``, a REST update."""

    t: float
    why: str  # webhook | redirect | connect-action | rest-update
    url: str
    method: str
    status: int | None  # HTTP status; None when nothing answered (or inline TwiML)
    error: str | None
    twiml: str
    verbs: tuple[Verb, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """A callback Twilio sent to the application (and how the application answered)."""

    t: float
    kind: str  # status | stream | amd
    event: str  # initiated | ringing | answered | completed | stream-started | ...
    url: str
    status: int | None
    error: str | None = None


@dataclass
class CallResult:
    call_sid: str
    account_sid: str
    direction: str
    to: str
    from_: str
    speed: float
    t0: float  # monotonic time of call time 0
    status: str = "queued"  # the Twilio CallStatus right now
    outcome: Outcome | None = None  # None while the call runs
    reason: str = ""
    transfer_to: str | None = None
    answered_by: str | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    fetches: list[FetchRecord] = field(default_factory=list)
    experience: list[Verb] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    callbacks: list[CallbackRecord] = field(default_factory=list)
    script_events: list[ScriptEvent] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def webhook(self) -> FetchRecord | None:
        return self.fetches[0] if self.fetches else None

    @property
    def stream(self) -> StreamRecord | None:
        """The first stream (most calls have exactly one)."""
        return self.streams[0] if self.streams else None

    @property
    def duration_s(self) -> float | None:
        """Answered → ended, in call seconds (Twilio's ``CallDuration`` before rounding)."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.answered_at

    def summary(self) -> dict[str, Any]:
        return {
            "sid": self.call_sid,
            "direction": self.direction,
            "to": self.to,
            "from": self.from_,
            "status": self.status,
            "outcome": self.outcome.value if self.outcome else None,
            "reason": self.reason,
            "transfer_to": self.transfer_to,
            "answered_by": self.answered_by,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "fetches": [
                {"t": f.t, "why": f.why, "url": f.url, "status": f.status, "error": f.error}
                for f in self.fetches
            ],
            "experience": [describe(v) for v in self.experience],
            "streams": [s.summary() for s in self.streams],
            "callbacks": [
                {"t": c.t, "kind": c.kind, "event": c.event, "status": c.status, "error": c.error}
                for c in self.callbacks
            ],
            "script_events": [[e.t, e.kind, e.detail] for e in self.script_events],
            "warnings": self.warnings,
        }


def describe(verb: Verb) -> str:
    """One line per verb for the inspection endpoint: ``Say: Hello``, ``Dial: +1555…``."""
    name = type(verb).__name__
    if isinstance(verb, Say):
        return f"{name}: {verb.text[:80]}"
    if isinstance(verb, Play | Redirect):
        return f"{name}: {verb.url}"
    if isinstance(verb, Pause):
        return f"{name}: {verb.length:g}s"
    if isinstance(verb, Connect):
        return f"{name}: {verb.stream.url if verb.stream else '-'}"
    if isinstance(verb, Dial):
        return f"{name}: {verb.target}"
    if isinstance(verb, Reject):
        return f"{name}: {verb.reason}"
    return name
