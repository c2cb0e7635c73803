"""What a :class:`~bridge.call.session.CallSession` asks its driver to do.

The session is sans-I/O: it never touches a socket, a timer or a task.  Audio and
protocol frames go into its two outbound :class:`~bridge.call.frames.FrameQueue`\\ s;
everything else it wants done is one of the actions below, collected in order and
taken by the driver with :meth:`CallSession.take_actions`.

A :class:`Disposition` says what the phone call does once the media stream is closed:
hang up, say an apology and hang up, or dial another number; :func:`to_twiml` is its
TwiML, served on ``POST /twilio/after-stream`` (the ``<Connect action>``) or sent with a
REST update of the call.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from bridge.store.records import CallUpdate
from bridge.twilio import responses


class EndReason(enum.Enum):
    CALLER_HANGUP = "caller_hangup"  # Twilio sent stop or closed the socket
    AGENT_ENDED = "agent_ended"  # the agent closed its socket normally (1000)
    AGENT_END_CALL = "agent_end_call"  # the agent called end_call (client or system tool)
    AGENT_FAILED = "agent_failed"  # connect error, abnormal close, unusable formats
    TRANSFER = "transfer"  # a tool handed the call to another number
    ADMIN_HANGUP = "admin_hangup"  # the admin API (or another bridge part) hung up
    TWILIO_PROTOCOL = "twilio_protocol"  # too many malformed frames from the caller side
    NO_START = "no_start"  # the stream never sent 'start'
    SHUTDOWN = "shutdown"  # the bridge is stopping
    VOICEMAIL = "voicemail"  # an answering machine picked up an outbound call
    MAX_DURATION = "max_duration"  # the call reached its length limit
    SILENCE = "silence"  # the caller said nothing for too long
    STREAM_REFUSED = "stream_refused"  # start not believed (token, replay, duplicate): 1008
    OVER_CAPACITY = "over_capacity"  # a concurrency cap was full when the stream started
    STREAM_STALLED = "stream_stalled"  # the started stream stopped sending media
    TWILIO_NOT_READING = "twilio_not_reading"  # our frames to Twilio went unread for long
    # Written by another instance's sweep, never by a session: the instance handling the
    # call stopped heartbeating (bridge/store/instances.py).
    INSTANCE_LOST = "instance_lost"


# --------------------------------------------------------------------------- dispositions


@dataclass(frozen=True)
class Hangup:
    """End the phone call."""


@dataclass(frozen=True)
class Apology:
    """Say ``text`` to the caller, then hang up."""

    text: str


@dataclass(frozen=True)
class Transfer:
    """Dial ``number`` (E.164 or a SIP URI) and bridge the caller to it."""

    number: str
    caller_id: str | None = None
    timeout_s: int | None = None


Disposition = Hangup | Apology | Transfer
HANGUP = Hangup()


def to_twiml(d: Disposition) -> str:
    if isinstance(d, Transfer):
        return responses.dial(d.number, caller_id=d.caller_id, timeout_s=d.timeout_s)
    if isinstance(d, Apology):
        return responses.say_and_hangup(d.text)
    return responses.hangup()


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class ConnectAgent:
    """Open the conversation WebSocket for ``agent_id``; report back with
    ``agent_connected`` / ``agent_closed``."""

    agent_id: str


@dataclass(frozen=True)
class CloseAgent:
    code: int = 1000
    reason: str = ""


class Timer(enum.Enum):
    """The session's timers (at most one of each armed at a time)."""

    START = "start"  # the stream must send 'start' by then
    SETTLE = "settle"  # the agent's quiet period before the goodbye wait
    GOODBYE = "goodbye"  # the longest wait for the last mark echo when ending
    STALL = "stall"  # the caller-stream watchdog's tick (every half timeout)
    AGENT_IDLE = "agent_idle"  # the agent watchdog


@dataclass(frozen=True)
class StartTimer:
    """(Re)arm timer ``name``: ``timer_fired(name)`` after ``delay_s`` unless cancelled."""

    name: Timer
    delay_s: float


@dataclass(frozen=True)
class CancelTimer:
    name: Timer


@dataclass(frozen=True)
class RunTool:
    """Run client tool ``name``; report back with ``tool_finished(tool_call_id, …)``."""

    name: str
    tool_call_id: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallerDtmf:
    """The caller pressed a key (handed to the driver's keypad handler, if any)."""

    digit: str


@dataclass(frozen=True)
class EndStream:
    """Send what is queued to Twilio, then close the media stream.

    ``disposition`` is what the call does next (see module docstring).  With Twilio
    credentials the driver also applies it over REST (see ``bridge.call.driver``).
    ``close_code`` 1008 (policy violation) closes a stream whose start was refused.
    """

    disposition: Disposition
    close_code: int = 1000


@dataclass(frozen=True)
class UpdateRecord:
    """Fields of the call's :class:`~bridge.store.records.CallRecord` that changed."""

    fields: CallUpdate


@dataclass(frozen=True)
class FrameCounts:
    """Frames each way: Twilio media frames in / out, agent audio in / out."""

    from_caller: int
    to_agent: int
    from_agent: int
    to_caller: int


@dataclass(frozen=True)
class CallSummary:
    """What one call did, for the ``call.summary`` log line and the metrics."""

    end_reason: str
    refused: str | None  # why the stream's start was refused (metric / log reason)
    then: str | None  # what the call did after the stream (None: the caller was gone)
    duration_s: float
    bytes_in: int
    bytes_out: int
    interruptions: int
    first_audio_ms: float | None
    stale_dropped: int
    shed_to_caller: int
    shed_to_agent: int
    early_dropped: int
    bad_twilio_frames: int
    bad_agent_frames: int
    tool_calls: int
    frames: FrameCounts
    agent_failure: str | None
    ping_ms: int | None
    ping_ms_max: int | None
    sequence_gaps: int
    formats: dict[str, str] | None

    def log_fields(self) -> dict[str, Any]:
        """The summary as the log line's fields (``frames`` nested)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Finished:
    """The call is over on both sides; the driver stops its tasks. Always the last action."""

    reason: EndReason
    summary: CallSummary


Action = (
    ConnectAgent
    | CloseAgent
    | StartTimer
    | CancelTimer
    | RunTool
    | CallerDtmf
    | EndStream
    | UpdateRecord
    | Finished
)
