"""One phone call as one state machine: the :class:`CallSession` (sans-I/O).

The session sits between two peers, Twilio (the caller's media stream) and the agent
(the conversation WebSocket), and never touches either: its driver
(:mod:`bridge.call.driver`) feeds it what happened and carries out what it asks.

Inputs (methods; each may change state)::

    caller_message(msg)      a parsed Twilio frame: start, media, mark, dtmf, stop
    caller_garbage(err)      a Twilio frame that did not parse
    caller_closed()          the Twilio socket went away
    agent_connected()        the conversation socket is open
    agent_message(msg)       a parsed conversation frame (incl. UnknownMessage)
    agent_garbage(err)       a conversation frame that did not parse
    agent_closed(code, why)  the conversation socket closed, or never opened
    timer_fired(timer)       a StartTimer ran out (a :class:`~bridge.call.actions.Timer`:
                             ``AGENT_IDLE`` the agent watchdog, ``STALL`` the
                             caller-stream watchdog…)
    tool_finished(id, …)     a RunTool completed
    request_end(reason, …)   a tool, the admin API or shutdown ends the call

Outputs: text frames in ``to_twilio`` / ``to_agent`` (bounded
:class:`~bridge.call.frames.FrameQueue`\\ s) and the actions of
:mod:`bridge.call.actions`, taken with :meth:`take_actions`.

States::

    AWAITING_START ──start──▶ CONNECTING_AGENT ──metadata──▶ ACTIVE
          │                         │                          │
          │ no start (timer)        │ agent fails              │ agent closes 1000 / end_call
          ▼                         ▼                          ▼
        ENDED ◀────────finish────── ENDING(reason) ◀───────────┘
                                 (goodbye plays out: marks, bounded wait)

    caller stop / socket close, from any state ──▶ ENDED at once (agent closed).

Who may start: ``start`` is checked first by the injected :class:`StreamCheck` (token,
replay, duplicate call, caps; :mod:`bridge.call.stream_gate`).  A start it does not
believe ends the session at once (``STREAM_REFUSED``): the socket is closed with 1008
and nothing is done in the claimed call's name: its SID is never adopted, so no
agent, no record, no REST, no registration.  An authentic call over a cap ends with
``OVER_CAPACITY``, recorded, with the over-capacity answer.

A started stream with no media frame for ``stream_stall_timeout_s`` is dead (Twilio
sends a frame every 20 ms, silence included): ``STREAM_STALLED``.  The watchdog is a
timer every half timeout comparing the frame counter with the previous tick (two
ticks without a frame), so the hot path pays nothing for it.

Audio paths:

* caller → agent: each ``media`` payload is transcoded to the agent's input format and
  sent as ``{"user_audio_chunk": …}``.  Before the agent's formats are known it is kept
  raw (up to ``caller_buffer_ms``, oldest shed) and sent once they are.
* agent → caller: each ``audio`` event is transcoded to mu-law 8000 and cut into media
  frames of at most ``out_chunk_bytes`` (100 ms).  A mark named ``audio-<event_id>``
  (the newest event it covers) follows once ``mark_every_bytes`` (100 ms) of audio has
  gone out unmarked, and always when the call is ending or a tool plays something.  A
  mark echo means Twilio has played (or cleared) everything before it, so "no marks
  pending and nothing unmarked" means the caller has heard all we sent.  Why not one mark
  per event: an agent sending 20 ms events made marks a third of all frames, both ways;
  nothing needs finer news of playout than 100 ms while the call goes on, and the goodbye
  wait marks its last audio at once.  The agent is only opened once ``start`` names the
  stream, so agent audio can never precede it.
* barge-in: ``interruption`` drops unsent audio, sends ``clear``, resets the outbound
  resampler, and every later ``audio`` event with ``event_id`` ≤ the interrupted id is
  dropped as stale (the official SDK's rule).

Insight (docs/insight.md): the session keeps the call's :class:`Transcript` (what was
said and done, with times) and its :class:`TurnLatency` (an energy VAD on every caller
frame; the first audio of each agent reply is marked at once, so its echo dates when it
was heard; the driver reports its writes with :meth:`CallSession.twilio_written`).  Both
are bounded, and written to the record when the call ends.

Why the end waits: an agent that says goodbye and closes its socket has usually not
been *heard* yet: Twilio holds seconds of audio.  ENDING keeps the stream open until
the last mark echoes (at most ``goodbye_timeout_s``).  When the agent ends with a tool
call rather than a close, its goodbye audio may still be on the way, so ENDING also
waits for ``end_call_settle_s`` without agent audio.
"""

from __future__ import annotations

import binascii
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec

from bridge.audio.formats import parse_format
from bridge.audio.transcoder import Transcoder, agent_to_caller, caller_to_agent
from bridge.audio.vad import CallerVad
from bridge.b64 import decode_strict
from bridge.call.actions import (
    HANGUP,
    Action,
    Apology,
    CallerDtmf,
    CallSummary,
    CancelTimer,
    CloseAgent,
    ConnectAgent,
    Disposition,
    EndReason,
    EndStream,
    Finished,
    FrameCounts,
    RunTool,
    StartTimer,
    Timer,
    Transfer,
    UpdateRecord,
)
from bridge.call.admission import Refusal, StreamCheck, StreamStart
from bridge.call.frames import AGENT_AUDIO_PREFIX, TWILIO_AUDIO_PREFIX, FrameQueue
from bridge.call.latency import TurnLatency
from bridge.call.plan import CallPlan, bounded_parameters, dynamic_variables
from bridge.call.transcript import Transcript, assemble
from bridge.config import Config
from bridge.convai import messages as convai
from bridge.errors import AudioFormatError, ConvaiProtocolError, TwilioProtocolError
from bridge.log import log_event
from bridge.twilio import media as twilio
from bridge.twilio.stream_token import TOKEN_PARAMETER

logger = logging.getLogger("bridge.call")

ULAW_BYTES_PER_MS = 8
NORMAL_CLOSE = 1000
POLICY_VIOLATION = 1008  # the close code of a refused stream
_CLAIMED_CHARS = 64  # attacker-controlled values of a refused start, as logged


class State(enum.Enum):
    AWAITING_START = "awaiting_start"
    CONNECTING_AGENT = "connecting_agent"
    ACTIVE = "active"
    ENDING = "ending"
    ENDED = "ended"


@dataclass(frozen=True)
class SessionSettings:
    goodbye_timeout_s: float = 10.0
    caller_buffer_ms: int = 1000
    on_agent_failure: Literal["apology", "transfer", "hangup"] = "apology"
    apology_text: str = "Sorry, we are having trouble connecting your call."
    fallback_number: str | None = None
    start_timeout_s: float = 10.0
    # An open agent socket that sends nothing at all (the platform pings every few
    # seconds) for this long is treated as failed; 0 = never.
    agent_idle_timeout_s: float = 30.0
    # A started stream with no media frame this long is dead; 0 = never.
    stream_stall_timeout_s: float = 10.0
    end_call_settle_s: float = 0.5
    out_chunk_bytes: int = 800  # 100 ms of mu-law per outbound media frame
    mark_every_bytes: int = 800  # at most one mark per 100 ms of audio while ACTIVE
    # Backpressure bounds (queued JSON text): ~60 s of audio toward Twilio (100 ms of
    # mu-law is ~1150 chars as a media frame), ~11 s toward the agent at 48 kHz PCM
    # (128 000 base64 chars a second).  Beyond them the oldest audio is shed, counted.
    max_twilio_queue_chars: int = 700_000
    max_agent_queue_chars: int = 1_500_000
    max_bad_twilio_frames: int = 50
    # Transcript and turn latency (bridge.call.transcript, bridge.call.latency).
    store_digits: bool = False
    vad_threshold_dbfs: float = -40.0
    vad_hangover_ms: int = 300

    @classmethod
    def from_config(cls, cfg: Config) -> SessionSettings:
        c = cfg.calls
        return cls(
            goodbye_timeout_s=c.goodbye_timeout_s,
            agent_idle_timeout_s=c.agent_idle_timeout_s,
            stream_stall_timeout_s=c.stream_stall_timeout_s,
            caller_buffer_ms=c.caller_buffer_ms,
            on_agent_failure=c.on_agent_failure,
            apology_text=c.apology_text,
            fallback_number=c.fallback_number,
            store_digits=cfg.telephony.store_digits,
            vad_threshold_dbfs=c.vad_threshold_dbfs,
            vad_hangover_ms=c.vad_hangover_ms,
        )


@dataclass
class Stats:
    bytes_in: int = 0  # caller mu-law bytes received
    bytes_out: int = 0  # mu-law bytes queued to the caller
    interruptions: int = 0
    stale_dropped: int = 0  # agent audio events dropped after a barge-in
    early_dropped: int = 0  # caller payloads shed from the pre-agent buffer
    bad_twilio: int = 0
    bad_agent: int = 0
    tool_calls: int = 0
    # Frames each way (metrics): Twilio media frames in / out, agent audio in / out.
    frames_from_caller: int = 0
    frames_to_caller: int = 0
    frames_from_agent: int = 0
    frames_to_agent: int = 0
    agent_failure: str | None = None  # why the agent failed, as a short kind
    ping_ms: int | None = None
    ping_ms_max: int | None = None
    audio_formats: dict[str, str] = field(default_factory=dict)


Resolve = Callable[[Mapping[str, str]], CallPlan | None]


class Transcoding(Protocol):
    """What the session asks of a transcoder (:class:`~bridge.audio.transcoder.Transcoder`
    or what the driver wraps it in)."""

    def process(self, data: bytes) -> bytes: ...
    def process_b64(self, payload_b64: str) -> str: ...
    def flush(self) -> bytes: ...
    def reset(self) -> None: ...


# (caller → agent, agent → caller) → what the session uses instead (the driver's timing
# sampler, bridge.call.sampling); each direction's object is used for that direction only.
WrapTranscoders = Callable[[Transcoder, Transcoder], tuple[Transcoding, Transcoding]]


class CallSession:
    def __init__(
        self,
        settings: SessionSettings,
        resolve: Resolve,
        tools: Collection[str] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        wrap_transcoders: WrapTranscoders | None = None,
        check: StreamCheck | None = None,
    ):
        self.settings = settings
        self._resolve = resolve
        self._check = check
        self._tools = tools
        self._clock = clock
        self._wall = wall
        self._wrap_transcoders = wrap_transcoders

        self.state = State.AWAITING_START
        self.reason: EndReason | None = None
        self.disposition: Disposition = HANGUP
        self.to_twilio = FrameQueue(settings.max_twilio_queue_chars, TWILIO_AUDIO_PREFIX)
        self.to_agent = FrameQueue(settings.max_agent_queue_chars, AGENT_AUDIO_PREFIX)
        self.stats = Stats()
        self.transcript = Transcript(store_digits=settings.store_digits)
        self.turns = TurnLatency(
            CallerVad(
                threshold_dbfs=settings.vad_threshold_dbfs, hangover_ms=settings.vad_hangover_ms
            )
        )

        self.call_sid = ""
        self.stream_sid = ""
        self.agent_id = ""
        self.conversation_id = ""
        self.parameters: Mapping[str, str] = {}
        self.plan: CallPlan | None = None
        self.refused: str | None = None  # why start was refused (metric / log reason)

        self._stream = twilio.MediaStream()
        self._actions: list[Action] = []
        self._agent: Literal["none", "connecting", "open", "closed"] = "none"
        self._caller_gone = False
        self._in: Transcoding | None = None
        self._out: Transcoding | None = None
        self._early: deque[str] = deque()  # caller payloads (base64 mu-law) before ACTIVE
        self._early_bytes = 0
        self._interrupted_id = -1
        self._pending_marks: deque[str] = deque()
        self._unmarked = ""  # the mark the audio queued since the last mark will get
        self._unmarked_bytes = 0
        self._settling = False
        self._tail_flushed = False
        self._created_at = clock()
        self._started_at: float | None = None
        self._first_audio_at: float | None = None
        self._agent_heard_at = 0.0  # last frame of any kind from the agent (watchdog)
        self._stall_seen = -1  # frames_from_caller at the previous stall tick
        self._stall_quiet_ticks = 0

        self._act(StartTimer(Timer.START, settings.start_timeout_s))

    # ------------------------------------------------------------------ outputs

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    @property
    def has_actions(self) -> bool:
        return bool(self._actions)

    @property
    def ended(self) -> bool:
        return self.state is State.ENDED

    @property
    def pending_marks(self) -> int:
        """Marks not yet echoed, plus one for audio queued but not marked yet."""
        return len(self._pending_marks) + (1 if self._unmarked else 0)

    # ------------------------------------------------------------------ caller side

    def caller_message(self, msg: twilio.TwilioMessage) -> None:
        if self.state is State.ENDED:
            return
        try:
            self._stream.receive(msg)
        except TwilioProtocolError as e:
            self.caller_garbage(e)
            return
        if type(msg) is twilio.Media:  # the hot path first: 50 frames a second
            payload = msg.media.payload
            self.stats.frames_from_caller += 1
            self.stats.bytes_in += _decoded_len(payload)
            if self.state is State.ACTIVE:
                self.turns.caller_frame(payload, self._clock())
                self._forward_caller_audio(payload)
            elif self.state is State.CONNECTING_AGENT:
                self.turns.caller_frame(payload, self._clock())
                self._buffer_caller_audio(payload)
        elif isinstance(msg, twilio.Mark):
            self._mark_echoed(msg.mark.name)
        elif isinstance(msg, twilio.Start):
            self._on_start(msg.start)
        elif isinstance(msg, twilio.Dtmf):
            if self.state is State.ACTIVE:
                self.transcript.keypad(self._clock(), msg.dtmf.digit)
                self._act(CallerDtmf(msg.dtmf.digit))
        elif isinstance(msg, twilio.Stop):
            self.caller_closed()

    def caller_garbage(self, err: TwilioProtocolError) -> None:
        if self.state is State.ENDED:
            return
        self.stats.bad_twilio += 1
        n = self.stats.bad_twilio
        if n == 1 or n % 10 == 0:  # a flood of garbage must not flood the log
            self._log("call.twilio_bad_frame", logging.WARNING, error=err.detail, count=n)
        if n >= self.settings.max_bad_twilio_frames:
            self.request_end(EndReason.TWILIO_PROTOCOL, HANGUP, wait_for_playout=False)

    def caller_closed(self) -> None:
        """Twilio's ``stop`` or its socket closing: the caller is gone, end now."""
        if self.state is State.ENDED:
            return
        self._caller_gone = True
        if self.reason is None:
            self.reason = EndReason.CALLER_HANGUP
        self._finish()

    def _on_start(self, start: twilio.StartBody) -> None:
        self._act(CancelTimer(Timer.START))
        self._started_at = self.transcript.origin = self._clock()
        verdict = None
        if self._check is not None:
            verdict = self._check(
                StreamStart(start.callSid, start.accountSid, start.customParameters)
            )
            if verdict is not None and not verdict.trusted:
                self._refuse(start, verdict.reason)
                return
        self.call_sid, self.stream_sid = start.callSid, start.streamSid
        params = {k: v for k, v in start.customParameters.items() if k != TOKEN_PARAMETER}
        self.parameters, cut = bounded_parameters(params)
        if cut:
            self._log(
                "call.parameters_dropped", logging.WARNING, dropped=cut, kept=len(self.parameters)
            )
        if verdict is not None:  # authentic, but no room: recorded, ended with the answer
            self.refused = verdict.reason
            self.agent_id = self.parameters.get("agent_id", "")
            self._log("call.stream_refused", logging.WARNING, reason=verdict.reason)
            self._act(UpdateRecord({"stream_sid": self.stream_sid, "status": "in-progress"}))
            self.request_end(
                EndReason.OVER_CAPACITY,
                _refusal_disposition(verdict.refusal),
                wait_for_playout=False,
            )
            return
        plan = self.plan = self._resolve(self.parameters)
        self.agent_id = plan.agent_id if plan else ""
        # caller_id is always the other party, called_number ours; on a call we placed
        # (direction=outbound) Twilio's From is ours, so the record keeps From/To as Twilio.
        ours, theirs = self.parameters.get("called_number"), self.parameters.get("caller_id")
        outbound = self.parameters.get("direction") == "outbound"
        self._act(
            UpdateRecord(
                {
                    "stream_sid": self.stream_sid,
                    "agent_id": self.agent_id or None,
                    "from_number": ours if outbound else theirs,
                    "to_number": theirs if outbound else ours,
                    "status": "in-progress",
                    "answered_at": self._wall(),
                }
            )
        )
        fmt = start.mediaFormat
        self._log(
            "call.started",
            route=plan.source if plan else None,
            media_format=f"{fmt.encoding}/{fmt.sampleRate}/{fmt.channels}",
        )
        if (fmt.encoding, fmt.sampleRate, fmt.channels) != ("audio/x-mulaw", 8000, 1):
            self._log("call.twilio_bad_format", logging.ERROR, encoding=fmt.encoding)
            self.request_end(EndReason.TWILIO_PROTOCOL, HANGUP, wait_for_playout=False)
            return
        if plan is None:
            self._agent_failed("no agent routes this call", "no_agent")
            return
        self.state = State.CONNECTING_AGENT
        self._agent = "connecting"
        self._act(ConnectAgent(plan.agent_id))
        if self.settings.stream_stall_timeout_s > 0:
            self._act(StartTimer(Timer.STALL, self.settings.stream_stall_timeout_s / 2))

    def _refuse(self, start: twilio.StartBody, reason: str) -> None:
        """End a start nobody vouches for: close 1008, adopt none of its claims."""
        self.refused = reason
        self.reason = EndReason.STREAM_REFUSED
        self._log(
            "call.stream_refused",
            logging.WARNING,
            reason=reason,
            claimed_call_sid=start.callSid[:_CLAIMED_CHARS],
            claimed_account_sid=start.accountSid[:_CLAIMED_CHARS],
            claimed_agent_id=start.customParameters.get("agent_id", "")[:_CLAIMED_CHARS] or None,
        )
        self._finish()

    def _buffer_caller_audio(self, payload: str) -> None:
        self._early.append(payload)
        self._early_bytes += _decoded_len(payload)
        limit = self.settings.caller_buffer_ms * ULAW_BYTES_PER_MS
        while self._early_bytes > limit and self._early:
            self._early_bytes -= _decoded_len(self._early.popleft())
            self.stats.early_dropped += 1

    def _forward_caller_audio(self, payload: str) -> None:
        assert self._in is not None
        st = self.stats
        try:
            out = self._in.process_b64(payload)
            if out is payload:  # passthrough: still check it, or the agent drops the call
                decode_strict(payload)
        except (binascii.Error, ValueError, AudioFormatError) as e:
            self.caller_garbage(TwilioProtocolError(f"media payload: {e}"))
            return
        st.frames_to_agent += 1
        self.to_agent.push(convai.user_audio_chunk_frame(out))
        if self.to_agent.stalled and self.state is not State.ENDED:  # (frames.py)
            kept = self.to_agent.control_kept
            self._agent_failed(f"the agent read nothing for long ({kept} frames)", "not_reading")

    def _mark_echoed(self, name: str) -> None:
        # Marks echo in the order they were sent; an unknown name was sent before a
        # clear (forgotten on purpose) or is not ours.
        if name not in self._pending_marks:
            return
        while self._pending_marks.popleft() != name:
            pass
        self.turns.mark_echoed(name, self._clock())
        if self.state is State.ENDING:
            self._maybe_finish()

    # ------------------------------------------------------------------ agent side

    def agent_connected(self) -> None:
        if self._agent != "connecting":
            return
        self._agent = "open"
        assert self.plan is not None
        facts = {
            "caller_id": self.parameters.get("caller_id", ""),
            "called_number": self.parameters.get("called_number", ""),
            "call_sid": self.call_sid,
            "stream_sid": self.stream_sid,
        }
        variables, dropped = dynamic_variables(self.plan, self.parameters, facts)
        if dropped:
            self._log("call.reserved_variables_dropped", logging.WARNING, names=sorted(dropped))
        override = None
        if self.plan.first_message or self.plan.language:
            override = convai.ConversationConfigOverride(
                agent=convai.AgentOverride(
                    first_message=self.plan.first_message, language=self.plan.language
                )
            )
        init = convai.ConversationInitiationClientData(
            conversation_config_override=override, dynamic_variables=dict(variables)
        )
        self.to_agent.push(convai.encode_str(init))
        self._log("call.agent_connected")

    def agent_message(self, msg: convai.ServerMessage | convai.UnknownMessage) -> None:
        if self.state is State.ENDED or self._agent != "open":
            return
        self._agent_heard_at = self._clock()
        if type(msg) is convai.Audio:  # the hot path first
            self._on_agent_audio(msg.audio_event)
        elif isinstance(msg, convai.Ping):
            self._on_ping(msg.ping_event)
        elif isinstance(msg, convai.Interruption):
            self._on_interruption(msg.interruption_event.event_id)
        elif isinstance(msg, convai.ConversationInitiationMetadata):
            self._on_metadata(msg.conversation_initiation_metadata_event)
        elif isinstance(msg, convai.ClientToolCall):
            self._on_tool_call(msg.client_tool_call)
        elif isinstance(msg, convai.AgentToolResponse):
            ev = msg.agent_tool_response
            self.transcript.agent_tool(self._clock(), ev.tool_name, ev.tool_type, ev.is_error)
            self._log(
                "call.agent_tool", tool=ev.tool_name, tool_type=ev.tool_type, error=ev.is_error
            )
            if ev.tool_name == "end_call" and not ev.is_error:
                # The platform will close the socket after the goodbye; start ending now
                # so the goodbye is waited for whichever comes first.
                self.request_end(EndReason.AGENT_END_CALL)
        elif isinstance(msg, convai.UnknownMessage):
            self._log("call.agent_unknown_event", logging.DEBUG, type=msg.type)
        elif isinstance(msg, convai.AgentResponse):
            self.transcript.agent(self._clock(), msg.agent_response_event.agent_response)
        elif isinstance(msg, convai.UserTranscript):
            self.transcript.user(self._clock(), msg.user_transcription_event.user_transcript)
        elif isinstance(msg, convai.AgentResponseCorrection):
            c = msg.agent_response_correction_event
            self.transcript.correction(
                self._clock(), c.original_agent_response, c.corrected_agent_response
            )
        # vad_score, tentative responses, contextual updates: nothing to do.

    def agent_garbage(self, err: ConvaiProtocolError) -> None:
        """A malformed conversation frame: logged, counted, the call goes on."""
        if self.state is State.ENDED:
            return
        self._agent_heard_at = self._clock()  # garbage, but the agent is alive
        self.stats.bad_agent += 1
        n = self.stats.bad_agent
        if n == 1 or n % 10 == 0:
            self._log("call.agent_bad_frame", logging.WARNING, error=err.detail, count=n)

    def agent_closed(self, code: int | None, reason: str) -> None:
        """The socket closed (``code`` None: it never opened; ``reason`` says why)."""
        if self._agent == "closed" or self.state is State.ENDED:
            self._agent = "closed"
            return
        was_active = self.state is State.ACTIVE
        self._agent = "closed"
        self._log("call.agent_closed", code=code, reason=reason[:200])
        if self.state is State.ENDING:
            if self._settling:  # nothing more can come: stop waiting for quiet
                self._settling = False
                self._act(CancelTimer(Timer.SETTLE))
            self._maybe_finish()
        elif code == NORMAL_CLOSE and was_active:
            self.request_end(EndReason.AGENT_ENDED)
        else:
            why = f"closed with code {code}" if code is not None else "could not connect"
            kind = "closed_abnormally" if code is not None else "connect"
            self._agent_failed(f"{why}: {reason}" if reason else why, kind)

    def _on_metadata(self, ev: convai.ConversationInitiationMetadataEvent) -> None:
        if self.state is not State.CONNECTING_AGENT:
            self._log("call.agent_duplicate_metadata", logging.WARNING)
            return
        self.conversation_id = ev.conversation_id
        try:
            to_agent = caller_to_agent(parse_format(ev.user_input_audio_format))
            to_caller = agent_to_caller(parse_format(ev.agent_output_audio_format))
        except AudioFormatError as e:
            self._agent_failed(f"unusable audio format: {e}", "bad_format")
            return
        if self._wrap_transcoders is not None:
            self._in, self._out = self._wrap_transcoders(to_agent, to_caller)
        else:
            self._in, self._out = to_agent, to_caller
        self.stats.audio_formats = {
            "input": ev.user_input_audio_format,
            "output": ev.agent_output_audio_format,
        }
        self.state = State.ACTIVE
        if self.settings.agent_idle_timeout_s > 0:
            self._act(StartTimer(Timer.AGENT_IDLE, self.settings.agent_idle_timeout_s))
        self._act(UpdateRecord({"conversation_id": self.conversation_id}))
        self._log(
            "call.agent_ready",
            input_format=ev.user_input_audio_format,
            output_format=ev.agent_output_audio_format,
            buffered_caller_frames=len(self._early),
        )
        early, self._early, self._early_bytes = self._early, deque(), 0
        for payload in early:
            self._forward_caller_audio(payload)

    def _on_agent_audio(self, ev: convai.AudioEvent) -> None:
        st = self.stats
        st.frames_from_agent += 1
        if ev.event_id <= self._interrupted_id:
            st.stale_dropped += 1
            return
        if self._out is None:
            self.agent_garbage(ConvaiProtocolError("audio before conversation_initiation_metadata"))
            return
        try:
            pcm = decode_strict(ev.audio_base_64)
            ulaw = self._out.process(pcm)
        except (binascii.Error, ValueError, AudioFormatError) as e:
            self.agent_garbage(ConvaiProtocolError(f"audio event {ev.event_id}: {e}"))
            return
        mark = f"audio-{ev.event_id}"
        # The first audio of a reply is marked at once: its echo dates when it was heard.
        opens = bool(ulaw) and self.turns.agent_audio(self._clock(), mark, len(ulaw))
        self._send_caller_audio(ulaw, mark, mark_now=opens)
        if self._settling:  # the agent is still talking: restart the quiet period
            self._act(StartTimer(Timer.SETTLE, self.settings.end_call_settle_s))

    def _on_interruption(self, event_id: int) -> None:
        self.stats.interruptions += 1
        self._interrupted_id = max(self._interrupted_id, event_id)
        # Unsent audio is stale; Twilio drops what it holds on 'clear' and echoes the
        # marks it had, which we stop waiting for.
        self.to_twilio.clear()
        self._pending_marks.clear()
        self._unmarked, self._unmarked_bytes = "", 0
        self.to_twilio.push(twilio.encode(twilio.Clear(streamSid=self.stream_sid)))
        self.turns.interrupted(self._clock())
        if self._out is not None:
            self._out.reset()
        self._log("call.interrupted", event_id=event_id, n=self.stats.interruptions)
        if self.state is State.ENDING:
            self._maybe_finish()

    def _on_ping(self, ev: convai.PingEvent) -> None:
        self.to_agent.push_front(convai.encode_str(convai.Pong(event_id=ev.event_id)))
        if ev.ping_ms is not None:
            self.stats.ping_ms = ev.ping_ms
            self.stats.ping_ms_max = max(ev.ping_ms, self.stats.ping_ms_max or 0)

    def _on_tool_call(self, call: convai.ClientToolCallBody) -> None:
        self.stats.tool_calls += 1
        self.transcript.tool_call(self._clock(), call.tool_name, call.tool_call_id, call.parameters)
        self._log("call.tool_call", tool=call.tool_name, tool_call_id=call.tool_call_id)
        if self.state is not State.ACTIVE:
            self._tool_result(call.tool_call_id, "the call is ending", True)
        elif call.tool_name not in self._tools:
            self._tool_result(call.tool_call_id, f"unknown client tool {call.tool_name!r}", True)
        else:
            self._act(RunTool(call.tool_name, call.tool_call_id, dict(call.parameters)))

    def tool_finished(self, tool_call_id: str, result: str, is_error: bool) -> None:
        if self._agent == "open":
            self._tool_result(tool_call_id, result, is_error)

    def _tool_result(self, tool_call_id: str, result: str, is_error: bool) -> None:
        self.transcript.tool_result(self._clock(), tool_call_id, result, is_error)
        msg = convai.ClientToolResult(tool_call_id=tool_call_id, result=result, is_error=is_error)
        self.to_agent.push(convai.encode_str(msg))

    # ------------------------------------------------------------------ tools' reach

    def send_to_agent(self, message: msgspec.Struct) -> None:
        if self._agent == "open":
            self.to_agent.push(convai.encode_str(message))

    def play_to_caller(self, ulaw: bytes, label: str) -> None:
        if self.state in (State.ACTIVE, State.ENDING) and not self._caller_gone:
            self._send_caller_audio(ulaw, label, mark_now=True)

    def _send_caller_audio(self, ulaw: bytes, mark: str, *, mark_now: bool = False) -> None:
        step = self.settings.out_chunk_bytes
        sid = self.stream_sid
        push = self.to_twilio.push
        n = len(ulaw)
        for i in range(0, n, step):
            push(twilio.media_frame(sid, twilio.encode_payload(ulaw[i : i + step])))
        self.stats.frames_to_caller += -(-n // step)
        self.stats.bytes_out += n
        self._unmarked = mark
        self._unmarked_bytes += n
        if (
            mark_now
            or self._unmarked_bytes >= self.settings.mark_every_bytes
            or self.state is not State.ACTIVE
        ):
            self._push_mark()
        if self._first_audio_at is None and n:
            self._first_audio_at = self._clock()
        if self.to_twilio.stalled and self.state is not State.ENDED:
            # Twilio read nothing for long (frames.py): nobody hears this call any more.
            q = self.to_twilio
            self._log(
                "call.twilio_not_reading", logging.WARNING, kept=q.control_kept, chars=q.chars
            )
            q.clear()  # never to be read: let the driver close the stream now
            self._pending_marks.clear()
            self._unmarked, self._unmarked_bytes = "", 0
            self.request_end(EndReason.TWILIO_NOT_READING, HANGUP, wait_for_playout=False)

    def twilio_written(self) -> None:
        """The driver wrote the queued frames to Twilio (dates a turn's "sent")."""
        if self.turns.awaiting_write:
            self.turns.written(self._clock())

    def _push_mark(self) -> None:
        """Mark the audio queued since the last mark (named for its newest event)."""
        name = self._unmarked
        if not name:
            return
        mark_msg = twilio.OutMark(streamSid=self.stream_sid, mark=twilio.MarkBody(name=name))
        self.to_twilio.push(twilio.encode(mark_msg))
        self._pending_marks.append(name)
        self._unmarked, self._unmarked_bytes = "", 0

    # ------------------------------------------------------------------ timers

    def timer_fired(self, name: Timer) -> None:
        if name is Timer.START and self.state is State.AWAITING_START:
            self._log("call.no_start", logging.WARNING)
            self.request_end(EndReason.NO_START, HANGUP, wait_for_playout=False)
        elif name is Timer.SETTLE and self._settling:
            self._settling = False
            self._maybe_finish()
        elif name is Timer.GOODBYE and self.state is State.ENDING:
            self._log("call.goodbye_timeout", logging.WARNING, pending_marks=self.pending_marks)
            self._finish()
        elif name is Timer.STALL and self.state in (State.CONNECTING_AGENT, State.ACTIVE):
            self._stall_tick()
        elif name is Timer.AGENT_IDLE and self._agent == "open" and self.state is State.ACTIVE:
            quiet = self._clock() - self._agent_heard_at
            limit = self.settings.agent_idle_timeout_s
            if quiet < limit:  # heard meanwhile: check again when it could run out
                self._act(StartTimer(Timer.AGENT_IDLE, limit - quiet))
            else:
                self._agent_failed(f"no frame from the agent for {quiet:.1f} s", "idle_timeout")

    def _stall_tick(self) -> None:
        seen = self.stats.frames_from_caller
        self._stall_quiet_ticks = self._stall_quiet_ticks + 1 if seen == self._stall_seen else 0
        self._stall_seen = seen
        limit = self.settings.stream_stall_timeout_s
        if self._stall_quiet_ticks >= 2:  # two half-timeouts in a row without a frame
            self._log("call.stream_stalled", logging.WARNING, timeout_s=limit, frames=seen)
            self.request_end(EndReason.STREAM_STALLED, HANGUP, wait_for_playout=False)
            return
        self._act(StartTimer(Timer.STALL, limit / 2))

    # ------------------------------------------------------------------ ending

    def request_end(
        self,
        reason: EndReason,
        disposition: Disposition = HANGUP,
        *,
        wait_for_playout: bool = True,
    ) -> None:
        """End the call with ``disposition``; optionally let queued agent audio play first.

        When already ending, a request that does not wait cuts the wait short (the
        first reason and disposition stand).
        """
        if self.state is State.ENDED:
            return
        if self.state is State.ENDING:
            if not wait_for_playout:
                self._finish()
            return
        self.reason, self.disposition = reason, disposition
        if isinstance(disposition, Transfer):
            self.transcript.transfer(self._clock(), disposition.number)
        waiting = wait_for_playout and self.state is State.ACTIVE
        self.state = State.ENDING
        self._early.clear()
        self._log("call.ending", reason=reason.value, then=_describe(disposition), waiting=waiting)
        if not waiting:
            self._finish()
            return
        self._act(StartTimer(Timer.GOODBYE, self.settings.goodbye_timeout_s))
        if self._agent == "open":  # the agent may still be sending its last words
            self._settling = True
            self._act(StartTimer(Timer.SETTLE, self.settings.end_call_settle_s))
        self._maybe_finish()

    def _agent_failed(self, why: str, kind: str) -> None:
        self.stats.agent_failure = kind
        s = self.settings
        fallback = (self.plan.fallback_number if self.plan else None) or s.fallback_number
        disposition: Disposition
        if s.on_agent_failure == "transfer" and fallback:
            disposition = Transfer(fallback)
        elif s.on_agent_failure == "hangup":
            disposition = HANGUP
        else:  # apology, or transfer with no number to transfer to
            disposition = Apology(s.apology_text)
        self._log("call.agent_failed", logging.ERROR, why=why, then=_describe(disposition))
        self.request_end(EndReason.AGENT_FAILED, disposition, wait_for_playout=False)

    def _maybe_finish(self) -> None:
        if self._settling:
            return
        if not self._tail_flushed and self._out is not None:
            # The agent is done: the resampler's last few ms belong to the goodbye.
            self._tail_flushed = True
            tail = self._out.flush()
            if tail and not self._caller_gone:
                self._send_caller_audio(tail, "audio-tail")
        if self._unmarked and not self._caller_gone:
            self._push_mark()  # the goodbye's last words must be heard before we close
        if self._pending_marks and not self._caller_gone:
            return
        self._finish()

    def _finish(self) -> None:
        if self.state is State.ENDED:
            return
        self.state = State.ENDED
        reason = self.reason or EndReason.CALLER_HANGUP
        self.reason = reason
        for timer in Timer:
            self._act(CancelTimer(timer))
        self._settling = False
        if self._agent in ("connecting", "open"):
            self._agent = "closed"
            self._act(CloseAgent(NORMAL_CLOSE, "call ended"))
        if reason is EndReason.STREAM_REFUSED:  # nothing in the claimed call's name
            self._act(EndStream(HANGUP, close_code=POLICY_VIOLATION))
            summary = self.summary()
            self._log("call.summary", **summary.log_fields())
            self._act(Finished(reason, summary))
            return
        if not self._caller_gone:
            self._act(EndStream(self.disposition))
        summary = self.summary()
        origin = self._started_at if self._started_at is not None else self._created_at
        turns, barges = self.turns.entries(origin)
        transcript = assemble(
            self.transcript, turns, barges, end_t=summary.duration_s, reason=reason.value
        )
        self._act(
            UpdateRecord(
                {
                    "status": "completed",
                    "ended_at": self._wall(),
                    "duration_s": summary.duration_s,
                    "end_reason": reason.value,
                    "bytes_in": self.stats.bytes_in,
                    "bytes_out": self.stats.bytes_out,
                    "interruptions": self.stats.interruptions,
                    "first_audio_ms": summary.first_audio_ms,
                    "transfer_target": self.disposition.number
                    if isinstance(self.disposition, Transfer)
                    else None,
                    "transcript": transcript,
                    "latency": self.turns.summary(),
                }
            )
        )
        self._log("call.summary", **summary.log_fields())
        self._act(Finished(reason, summary))

    def summary(self) -> CallSummary:
        st = self.stats
        now = self._clock()
        started = self._started_at
        first = self._first_audio_at
        return CallSummary(
            end_reason=(self.reason or EndReason.CALLER_HANGUP).value,
            refused=self.refused,
            then=_describe(self.disposition) if not self._caller_gone else None,
            duration_s=round(now - (started if started is not None else self._created_at), 3),
            bytes_in=st.bytes_in,
            bytes_out=st.bytes_out,
            interruptions=st.interruptions,
            first_audio_ms=round((first - started) * 1000, 1)
            if first is not None and started is not None
            else None,
            stale_dropped=st.stale_dropped,
            shed_to_caller=self.to_twilio.dropped,
            shed_to_agent=self.to_agent.dropped,
            early_dropped=st.early_dropped,
            bad_twilio_frames=st.bad_twilio,
            bad_agent_frames=st.bad_agent,
            tool_calls=st.tool_calls,
            frames=FrameCounts(
                from_caller=st.frames_from_caller,
                to_agent=st.frames_to_agent,
                from_agent=st.frames_from_agent,
                to_caller=st.frames_to_caller,
            ),
            agent_failure=st.agent_failure,
            ping_ms=st.ping_ms,
            ping_ms_max=st.ping_ms_max,
            sequence_gaps=self._stream.gaps,
            formats=st.audio_formats or None,
        )

    # ------------------------------------------------------------------ helpers

    def _act(self, action: Action) -> None:
        self._actions.append(action)

    def _log(self, event: str, level: int = logging.INFO, **fields: Any) -> None:
        log_event(
            logger,
            event,
            level,
            call_sid=self.call_sid or None,
            stream_sid=self.stream_sid or None,
            conversation_id=self.conversation_id or None,
            agent_id=self.agent_id or None,
            **fields,
        )


def _decoded_len(b64: str) -> int:
    """Bytes a base64 payload decodes to, without decoding it."""
    return (len(b64) >> 2) * 3 - b64[-2:].count("=")


def _refusal_disposition(r: Refusal | None) -> Disposition:
    """How an answered call turned away at stream start ends (no <Reject> any more)."""
    if r is not None and r.dial:
        return Transfer(r.dial)
    if r is not None and r.message:
        return Apology(r.message)
    return HANGUP


def _describe(d: Disposition) -> str:
    if isinstance(d, Transfer):
        return f"transfer:{d.number}"
    if isinstance(d, Apology):
        return "apology"
    return "hangup"
