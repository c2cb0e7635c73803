"""One emulated conversation, as a pure state machine (no sockets, no clock of its own).

Inputs are the client's text frames (:meth:`receive`), the passage of time (:meth:`tick`)
and the client going away (:meth:`client_closed`), each with ``now`` in monotonic
seconds.  Outputs are queued and collected with :meth:`take_outputs`: text frames to
send and at most one close.  :meth:`next_deadline` says when ``tick`` is next due.  The
WebSocket endpoint is a loop around these four calls; unit tests drive them with a
made-up clock.

Lifecycle, top to bottom:

1. *waiting for client data*: the first frame, if it is
   ``conversation_initiation_client_data``, is checked (reserved dynamic variables,
   override permissions: 1008 when refused) and applied; any other frame, or
   ``init_wait_s`` without one, starts the conversation without it.
2. *active*: ``conversation_initiation_metadata`` goes out first, then the greeting (the
   first message, as synthetic audio) and the scripted steps, one after another; then
   the agent's mode (echo / loopback / silent) answers the caller.  Pings go out every
   ``ping_interval_s``; a ping left unanswered for ``pong_timeout_s`` closes with 1011.
3. *closed*: by a step (``end_call`` → 1000, ``close`` → its code), by bad input (1007
   for undecodable audio or malformed frames, 1003 for binary frames), by the pong
   timeout, by ``max_duration_seconds``, or by the client.

Reply audio is sent in ``chunk_ms`` audio events, each with the next ``event_id``, and
no further than ``reply_lead_s`` ahead of the *playout clock*: the time at which the
client will have played everything sent so far, assuming real-time playback from the
moment each chunk was sent.  The agent is "speaking" while that clock is ahead of now
or reply audio is still queued; caller speech detected then (energy VAD) is a barge-in:
``interruption`` with the last audio ``event_id`` sent, and the rest of the reply is
dropped; when the reply had a text, ``agent_response_correction`` follows with the words
the caller heard (the text cut in proportion to the audio played by the playout clock).
"""

from __future__ import annotations

import binascii
import math
from collections import deque
from dataclasses import dataclass
from enum import Enum

import msgspec

from bridge.audio.formats import AudioFormat, parse_format
from bridge.b64 import decode_strict
from bridge.convai.messages import (
    AgentResponse,
    AgentResponseCorrection,
    AgentResponseCorrectionEvent,
    AgentResponseEvent,
    AgentToolResponse,
    AgentToolResponseEvent,
    ClientMessage,
    ClientToolCall,
    ClientToolCallBody,
    ClientToolResult,
    ContextualUpdate,
    ConversationInitiationClientData,
    ConversationInitiationMetadata,
    ConversationInitiationMetadataEvent,
    Interruption,
    InterruptionEvent,
    Ping,
    PingEvent,
    Pong,
    UnknownMessage,
    UserActivity,
    UserAudioChunk,
    UserMessage,
    UserTranscript,
    UserTranscriptionEvent,
    encode_str,
    parse_client,
)
from bridge.emulator.platform.behaviour import (
    AgentProfile,
    CloseStep,
    EndCallStep,
    ListenStep,
    PlayStep,
    RawStep,
    StallStep,
    Step,
    ToolCallStep,
    WaitPlayoutStep,
    WaitStep,
)
from bridge.emulator.platform.overrides import dynamic_variable_problem, override_problem
from bridge.emulator.platform.records import ConversationRecord, ToolCallRecord, ToolResultRecord
from bridge.emulator.platform.vad import EnergyVad, SpeechEnded, SpeechStarted
from bridge.emulator.platform.voice import (
    FormatConverter,
    encode_pcm16,
    synth_utterance,
    text_duration_ms,
    to_pcm16,
)
from bridge.errors import ConvaiProtocolError

CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


@dataclass(frozen=True)
class ConversationTiming:
    """Clock settings of the emulated platform; tests shrink them."""

    ping_interval_s: float = 2.0
    pong_timeout_s: float = 10.0
    init_wait_s: float = 1.0
    reply_lead_s: float = 0.4
    chunk_ms: int = 100
    # No caller audio at all for this long ends an utterance in progress (a client that
    # stops sending rather than sending silence).
    silence_gap_s: float = 1.0


# Outputs are frozen msgspec structs: immutable and comparable like frozen dataclasses,
# and about half the cost to build (one per audio event).
class SendText(msgspec.Struct, frozen=True):
    text: str


class CloseConnection(msgspec.Struct, frozen=True):
    code: int
    reason: str


Output = SendText | CloseConnection


class Phase(Enum):
    WAITING_FOR_CLIENT_DATA = "waiting_for_client_data"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass(frozen=True)
class _Say:
    """The greeting, run as the script's implicit first step."""

    text: str
    interruptible: bool


@dataclass(eq=False)
class _Reply:
    chunks: deque[bytes]
    interruptible: bool
    not_before: float = -math.inf  # its audio starts no earlier (behaviour.reply_delay_ms)
    text: str = ""
    total: int = 0  # bytes of audio
    sent: int = 0  # bytes sent so far


@dataclass
class _StepState:
    deadline: float = math.inf
    reply: _Reply | None = None
    mark: int = 0
    tool_call_id: str | None = None


class _AudioChunkBytes(msgspec.Struct):
    """``user_audio_chunk`` with the base64 decoded by msgspec, in C, with the JSON.

    Whatever it accepts, :func:`~bridge.b64.decode_strict` accepts too, with the
    same bytes; what it refuses goes the general way (:func:`parse_client`), which says
    exactly what is wrong."""

    user_audio_chunk: bytes


class _AudioEventBytes(msgspec.Struct):
    audio_base_64: bytes  # encoded as standard, padded base64: as b64encode does
    event_id: int


class _AudioBytes(msgspec.Struct, tag_field="type", tag="audio"):
    """:class:`~bridge.convai.messages.Audio`, byte for byte, from raw audio."""

    audio_event: _AudioEventBytes


_chunk_decoder = msgspec.json.Decoder(_AudioChunkBytes)
_encoder = msgspec.json.Encoder()


def _is_audio_chunk(data: str | bytes) -> bool:
    """The test :func:`parse_client` makes: the key near the start of the frame."""
    if isinstance(data, str):
        return '"user_audio_chunk"' in data[:40]
    return b'"user_audio_chunk"' in data[:40]


def truncate_reason(reason: str) -> str:
    """``reason`` cut to fit a close frame (123 bytes of UTF-8)."""
    raw = reason.encode()
    if len(raw) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return raw[: MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."


class EmulatedConversation:
    def __init__(
        self,
        conversation_id: str,
        profile: AgentProfile,
        *,
        now: float,
        started_at_unix: float,
        timing: ConversationTiming | None = None,
        capture: bytearray | None = None,
        max_capture_bytes: int = 16 * 1024 * 1024,
    ):
        self.conversation_id = conversation_id
        self.profile = profile
        self.timing = timing or ConversationTiming()
        self.capture = capture
        self.max_capture_bytes = max_capture_bytes
        p = profile
        self.input: AudioFormat = parse_format(p.input_format)
        self.output: AudioFormat = parse_format(p.output_format)
        self.record = ConversationRecord(
            conversation_id=self.conversation_id,
            agent_id=p.agent_id,
            input_format=p.input_format,
            output_format=p.output_format,
            started_at_unix=started_at_unix,
        )
        v = p.behaviour.vad
        self._vad = EnergyVad(
            self.input.sample_rate,
            threshold_dbfs=v.threshold_dbfs,
            min_speech_ms=v.min_speech_ms,
            end_silence_ms=v.end_silence_ms,
            max_utterance_ms=v.max_utterance_ms,
        )
        self._echo = FormatConverter(self.input.sample_rate, self.output)
        self._loopback = FormatConverter(self.input.sample_rate, self.output)
        self.phase = Phase.WAITING_FOR_CLIENT_DATA
        self.stalled = False
        self._outbox: list[Output] = []
        self._init_deadline = now + self.timing.init_wait_s
        self._max_deadline = now + p.max_duration_s if p.max_duration_s is not None else math.inf
        self._first_message = p.first_message
        self._audio_event_id = 0
        self._ping_id = 0
        self._next_ping = math.inf
        self._outstanding: dict[int, float] = {}
        self._replies: deque[_Reply] = deque()
        self._playout_end = now
        self._playing_interruptible = True
        self._playing: _Reply | None = None  # the reply whose audio went out last
        self._steps: list[Step | _Say] = []
        self._step_index = 0
        self._step: _StepState | None = None
        self._tool_seq = 0
        self._utterances = 0
        self._last_audio_at = now
        chunk = self.output.sample_rate * self.output.sample_width * self.timing.chunk_ms // 1000
        self._chunk_bytes = max(self.output.sample_width, chunk - chunk % self.output.sample_width)
        # Looked up once: the per-chunk path reads these fifty times a second.
        self._out_bytes_per_s = self.output.sample_rate * self.output.sample_width
        self._loopback_mode = p.behaviour.mode == "loopback"

    # ================================================================= inputs

    def receive(self, data: str | bytes, now: float) -> None:
        """One text frame from the client."""
        if self.phase is Phase.ACTIVE and _is_audio_chunk(data):
            # The frame of every 20 ms: JSON and base64 decoded in one msgspec call.
            try:
                chunk = _chunk_decoder.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass  # the general path below finds and names the problem
            else:
                self._audio(chunk.user_audio_chunk, now)
                self._progress(now)
                return
        if self.phase is Phase.CLOSED:
            return
        try:
            msg = parse_client(data)
        except ConvaiProtocolError as e:
            self.record.notes.append(f"malformed frame: {e.detail}")
            self._close(CLOSE_INVALID_PAYLOAD, f"malformed message: {e.detail}")
            return
        if self.phase is Phase.WAITING_FOR_CLIENT_DATA:
            if isinstance(msg, ConversationInitiationClientData):
                self._start(now, msg)
                return
            self._start(now, None)
            if self.closed:
                return
        self._handle(msg, now)
        self._progress(now)

    def receive_binary(self, now: float) -> None:
        """A binary frame: the protocol is JSON text frames only."""
        if self.phase is not Phase.CLOSED:
            self._close(CLOSE_UNSUPPORTED_DATA, "binary frames are not supported; send JSON text")

    def tick(self, now: float) -> None:
        """Let time pass: start on the init timeout, pings, pong timeout, replies, steps."""
        if self.phase is not Phase.ACTIVE:
            if self.phase is Phase.CLOSED or now < self._init_deadline:
                return
            self._start(now, None)
            if self.closed:
                return
        if self.stalled:
            return
        if now >= self._max_deadline:
            self._close(CLOSE_NORMAL, "max_duration_seconds reached")
            return
        if (
            self._outstanding
            and now - min(self._outstanding.values()) >= self.timing.pong_timeout_s
        ):
            oldest = min(self._outstanding, key=self._outstanding.__getitem__)
            self._close(
                CLOSE_INTERNAL_ERROR,
                f"no pong for ping {oldest} within {self.timing.pong_timeout_s:g} s",
            )
            return
        if now >= self._next_ping:
            self._ping(now)
        if self._vad.in_speech and now - self._last_audio_at >= self.timing.silence_gap_s:
            ended = self._vad.end_now()
            if ended is not None:
                self._utterance_ended(ended, now)
        self._progress(now)

    def close(self, code: int, reason: str) -> None:
        """End the conversation from the platform's side (the endpoint gives up on the
        client); the close is the last output."""
        if self.phase is not Phase.CLOSED:
            self._close(code, reason)

    def client_closed(self, code: int | None, reason: str, now_unix: float) -> None:
        if self.phase is Phase.CLOSED:
            return
        self.phase = Phase.CLOSED
        self.record.closed_by = "client"
        self.record.close_code = code
        self.record.close_reason = reason or None
        self.record.ended_at_unix = now_unix

    # ================================================================= outputs

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    @property
    def active(self) -> bool:
        return self.phase is Phase.ACTIVE

    def take_outputs(self) -> list[Output]:
        out, self._outbox = self._outbox, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must run next; ``None`` when only client input matters."""
        if self.phase is Phase.CLOSED:
            return None
        if self.phase is Phase.WAITING_FOR_CLIENT_DATA:
            return self._init_deadline
        if self.stalled:
            return None
        # Asked after every frame: comparisons, no list.
        due = self._next_ping
        if self._max_deadline < due:
            due = self._max_deadline
        if self._outstanding:
            pong_due = min(self._outstanding.values()) + self.timing.pong_timeout_s
            if pong_due < due:
                due = pong_due
        if self._replies:
            reply_due = max(
                self._playout_end - self.timing.reply_lead_s, self._replies[0].not_before
            )
            if reply_due < due:
                due = reply_due
        if self._step is not None:
            if self._step.deadline < due:
                due = self._step.deadline
            if self._playout_end < due and isinstance(self._current_step(), WaitPlayoutStep):
                due = self._playout_end
        if self._vad.in_speech:
            gap_due = self._last_audio_at + self.timing.silence_gap_s
            if gap_due < due:
                due = gap_due
        return due

    # ================================================================= start

    def _start(self, now: float, data: ConversationInitiationClientData | None) -> None:
        if data is not None:
            self._take_client_data(data)
            problem = dynamic_variable_problem(data) or override_problem(
                data, self.profile.overrides
            )
            if problem is not None:
                self._close(CLOSE_POLICY, problem)
                return
            agent = (
                data.conversation_config_override.agent
                if data.conversation_config_override
                else None
            )
            if agent is not None and agent.first_message is not None:
                self._first_message = agent.first_message
        self.phase = Phase.ACTIVE
        self._playout_end = now
        self._last_audio_at = now
        self._send(
            ConversationInitiationMetadata(
                conversation_initiation_metadata_event=ConversationInitiationMetadataEvent(
                    conversation_id=self.conversation_id,
                    agent_output_audio_format=self.output.name,
                    user_input_audio_format=self.input.name,
                )
            )
        )
        self._next_ping = now + self.timing.ping_interval_s
        b = self.profile.behaviour
        if b.greeting and self._first_message:
            self._steps.append(_Say(self._first_message, self.profile.first_message_interruptible))
        self._steps.extend(b.steps)
        self._progress(now)

    def _take_client_data(self, data: ConversationInitiationClientData) -> None:
        r = self.record
        r.client_data_received = True
        r.dynamic_variables = dict(data.dynamic_variables or {})
        if data.conversation_config_override is not None:
            r.conversation_config_override = msgspec.to_builtins(data.conversation_config_override)
        if data.custom_llm_extra_body is not None:
            r.custom_llm_extra_body = msgspec.to_builtins(data.custom_llm_extra_body)
        r.user_id = data.user_id
        r.source_info = dict(data.source_info or {})

    # ================================================================= client messages

    def _handle(self, msg: ClientMessage | UserAudioChunk | UnknownMessage, now: float) -> None:
        r = self.record
        match msg:
            case UserAudioChunk(user_audio_chunk=payload):
                try:
                    raw = decode_strict(payload)
                except (binascii.Error, ValueError):
                    self._close(CLOSE_INVALID_PAYLOAD, "user_audio_chunk is not valid base64")
                    return
                self._audio(raw, now)
            case Pong(event_id=event_id):
                sent = self._outstanding.pop(event_id, None)
                if sent is None:
                    r.unexpected_pongs.append(event_id)
                else:
                    r.pongs.append(event_id)
                    r.last_rtt_ms = round((now - sent) * 1000)
            case ClientToolResult():
                r.tool_results.append(
                    ToolResultRecord(
                        tool_call_id=msg.tool_call_id, result=msg.result, is_error=msg.is_error
                    )
                )
                if msg.tool_call_id not in {c.tool_call_id for c in r.tool_calls}:
                    r.notes.append(
                        f"client_tool_result for unknown tool_call_id {msg.tool_call_id!r}"
                    )
            case ContextualUpdate(text=text):
                r.contextual_updates.append(text)
            case UserMessage(text=text):
                r.user_messages.append(text)
                if (
                    self._script_done()
                    and self.profile.behaviour.mode == "echo"
                    and not self.stalled
                ):
                    self._say(f"[emulator] you wrote: {text}", text_duration_ms(text), now)
            case UserActivity():
                r.user_activity += 1
            case ConversationInitiationClientData():
                r.notes.append("conversation_initiation_client_data after the start ignored")
            case UnknownMessage(type=kind):
                r.unknown_types.append(kind)

    def _audio(self, raw: bytes, now: float) -> None:
        size = len(raw)
        if size & 1 and self.input.encoding == "pcm":
            self._close(
                CLOSE_INVALID_PAYLOAD,
                f"user_audio_chunk has {size} bytes: not whole 16-bit samples of {self.input.name}",
            )
            return
        r = self.record
        r.audio_chunks += 1
        counts, name = r.audio_bytes, self.input.name
        counts[name] = counts.get(name, 0) + size
        if self.capture is not None and len(self.capture) < self.max_capture_bytes:
            self.capture += raw[: self.max_capture_bytes - len(self.capture)]
        if self.stalled or not size:
            return
        pcm = to_pcm16(raw, self.input)
        self._last_audio_at = now
        if self._loopback_mode and self._script_done():
            out = self._loopback.process(pcm)
            if out and not self.profile.text_only:
                self._send_audio(out, now)
            return
        for event in self._vad.process(pcm):
            if isinstance(event, SpeechStarted):
                if self.profile.behaviour.barge_in and self._interruptible_at(now):
                    self._interrupt(now)
            else:
                self._utterance_ended(event, now)

    def _utterance_ended(self, event: SpeechEnded, now: float) -> None:
        ms = event.duration_ms(self.input.sample_rate)
        if ms == 0:
            return
        self._utterances += 1
        self.record.utterances_ms.append(ms)
        self._send(
            UserTranscript(
                user_transcription_event=UserTranscriptionEvent(
                    user_transcript=f"[emulator: no speech recognition] {ms / 1000:.2f} s of caller speech"
                )
            )
        )
        if self._script_done() and self.profile.behaviour.mode == "echo":
            # The speech ended where its last frame did: the audio since then (the VAD's
            # end silence) arrived in real time, so it lies that far in the past.
            ended = now - (self._vad.audio_ms - event.at_ms) / 1000
            self._queue_reply(
                f"[emulator] playing back {ms / 1000:.2f} s of caller speech",
                self._echo.convert_all(event.audio),
                interruptible=True,
                now=now,
                not_before=ended + self.profile.behaviour.reply_delay_ms / 1000,
            )

    # ================================================================= agent side

    def _progress(self, now: float) -> None:
        if self._replies:
            self._pump(now)
        if self._step_index < len(self._steps):
            self._advance(now)

    def _send(self, msg: msgspec.Struct) -> None:
        self._outbox.append(SendText(encode_str(msg)))

    def _close(self, code: int, reason: str) -> None:
        reason = truncate_reason(reason)
        self._outbox.append(CloseConnection(code, reason))
        self.phase = Phase.CLOSED
        self.record.closed_by = "agent"
        self.record.close_code = code
        self.record.close_reason = reason

    def _ping(self, now: float) -> None:
        self._ping_id += 1
        self._outstanding[self._ping_id] = now
        self.record.pings_sent += 1
        # The official SDK reads ping_event["ping_ms"] unconditionally: always send it.
        self._send(
            Ping(ping_event=PingEvent(event_id=self._ping_id, ping_ms=self.record.last_rtt_ms or 0))
        )
        self._next_ping = now + self.timing.ping_interval_s

    def _send_audio(self, data: bytes, now: float) -> None:
        self._audio_event_id = event_id = self._audio_event_id + 1
        # msgspec base64-encodes the bytes while writing the JSON: no str in between.
        frame = _encoder.encode(_AudioBytes(_AudioEventBytes(data, event_id)))
        self._outbox.append(SendText(frame.decode()))
        r = self.record
        r.audio_events_sent += 1
        r.audio_bytes_sent += len(data)
        playout_end = self._playout_end
        self._playout_end = (now if now > playout_end else playout_end) + len(
            data
        ) / self._out_bytes_per_s

    def _say(self, text: str, ms: int, now: float, *, interruptible: bool = True) -> _Reply:
        pcm = synth_utterance(ms, self.output.sample_rate, seed=text)
        return self._queue_reply(
            text, encode_pcm16(pcm, self.output), interruptible=interruptible, now=now
        )

    def _queue_reply(
        self,
        text: str,
        audio: bytes,
        *,
        interruptible: bool,
        now: float,
        not_before: float = -math.inf,
    ) -> _Reply:
        if text:
            self.record.agent_responses.append(text)
            self._send(AgentResponse(agent_response_event=AgentResponseEvent(agent_response=text)))
        step = self._chunk_bytes
        chunks = deque(
            []
            if self.profile.text_only
            else [audio[i : i + step] for i in range(0, len(audio), step)]
        )
        reply = _Reply(chunks, interruptible, not_before, text, len(audio))
        self._replies.append(reply)
        self._pump(now)
        return reply

    def _pump(self, now: float) -> None:
        """Send queued reply audio up to ``reply_lead_s`` ahead of the playout clock."""
        while self._replies and self.phase is Phase.ACTIVE and not self.stalled:
            reply = self._replies[0]
            if now < reply.not_before - 1e-9:
                return
            # <= (with float slack): at the deadline next_deadline() gave, a chunk is due.
            while reply.chunks and self._playout_end - now <= self.timing.reply_lead_s + 1e-9:
                self._playing_interruptible = reply.interruptible
                self._playing = reply
                data = reply.chunks.popleft()
                reply.sent += len(data)
                self._send_audio(data, now)
            if reply.chunks:
                return
            self._replies.popleft()

    def _interruptible_at(self, now: float) -> bool:
        """Whether caller speech now is a barge-in: the agent is speaking and may be cut off
        (the greeting may not, with ``disable_first_message_interruptions``)."""
        if now < self._playout_end:
            return self._playing_interruptible
        return bool(self._replies) and self._replies[0].interruptible

    def _interrupt(self, now: float) -> None:
        playing, unplayed_s = self._playing, max(0.0, self._playout_end - now)
        self._replies.clear()
        self._playout_end = now
        self._playing = None
        if self._audio_event_id:
            self.record.interruptions.append(self._audio_event_id)
            self._send(
                Interruption(interruption_event=InterruptionEvent(event_id=self._audio_event_id))
            )
        if playing is not None and playing.text and playing.total:
            heard = max(0.0, playing.sent - unplayed_s * self._out_bytes_per_s) / playing.total
            words = playing.text.split()
            if heard < 1.0:
                self._send(
                    AgentResponseCorrection(
                        agent_response_correction_event=AgentResponseCorrectionEvent(
                            original_agent_response=playing.text,
                            corrected_agent_response=" ".join(words[: int(len(words) * heard)]),
                        )
                    )
                )

    # ================================================================= script

    def _current_step(self) -> Step | _Say | None:
        return self._steps[self._step_index] if self._step_index < len(self._steps) else None

    def _script_done(self) -> bool:
        return self.phase is Phase.ACTIVE and self._step_index >= len(self._steps)

    def _advance(self, now: float) -> None:
        while self.phase is Phase.ACTIVE and not self.stalled:
            step = self._current_step()
            if step is None:
                return
            if self._step is None:
                self._step = _StepState()
                self._begin(step, self._step, now)
                if not self.active or self.stalled:
                    self._step_index += 1
                    self._step = None
                    return
            if not self._finished(step, self._step, now):
                return
            self._step_index += 1
            self._step = None

    def _begin(self, step: Step | _Say, st: _StepState, now: float) -> None:
        match step:
            case _Say(text=text, interruptible=interruptible):
                st.reply = self._say(text, text_duration_ms(text), now, interruptible=interruptible)
            case PlayStep(ms=ms, text=text):
                seed = text or f"{self.conversation_id}:{self._step_index}"
                pcm = synth_utterance(ms, self.output.sample_rate, seed=seed)
                st.reply = self._queue_reply(
                    text, encode_pcm16(pcm, self.output), interruptible=True, now=now
                )
            case WaitStep(ms=ms):
                st.deadline = now + ms / 1000
            case ListenStep(timeout_ms=timeout_ms):
                st.mark = self._utterances
                if timeout_ms is not None:
                    st.deadline = now + timeout_ms / 1000
            case ToolCallStep():
                self._tool_seq += 1
                call_id = f"emu_tool_{self._tool_seq}"
                self.record.tool_calls.append(
                    ToolCallRecord(
                        tool_call_id=call_id, tool_name=step.tool_name, parameters=step.parameters
                    )
                )
                self._send(
                    ClientToolCall(
                        client_tool_call=ClientToolCallBody(
                            tool_name=step.tool_name,
                            tool_call_id=call_id,
                            parameters=step.parameters,
                        )
                    )
                )
                if step.wait_result:
                    st.tool_call_id = call_id
                    st.deadline = now + step.timeout_ms / 1000
            case EndCallStep(reason=reason):
                self._tool_seq += 1
                self._send(
                    AgentToolResponse(
                        agent_tool_response=AgentToolResponseEvent(
                            tool_name="end_call",
                            tool_call_id=f"emu_tool_{self._tool_seq}",
                            tool_type="system",
                        )
                    )
                )
                self._close(CLOSE_NORMAL, reason)
            case CloseStep(code=code, reason=reason):
                self._close(code, reason)
            case RawStep(frames=frames):
                self._outbox.extend(SendText(f) for f in frames)
                self.record.notes.append(f"sent {len(frames)} raw frames")
            case StallStep():
                self.stalled = True
                self._replies.clear()
                self.record.notes.append("stalled: no more pings, audio or replies")

    def _finished(self, step: Step | _Say, st: _StepState, now: float) -> bool:
        match step:
            case _Say() | PlayStep():
                return st.reply not in self._replies
            case WaitStep():
                return now >= st.deadline
            case WaitPlayoutStep():
                return not self._replies and now >= self._playout_end
            case ListenStep():
                if self._utterances > st.mark:
                    return True
                if now >= st.deadline:
                    self.record.notes.append("listen step timed out without an utterance")
                    return True
                return False
            case ToolCallStep():
                if st.tool_call_id is None:
                    return True
                if any(t.tool_call_id == st.tool_call_id for t in self.record.tool_results):
                    return True
                if now >= st.deadline:
                    self.record.notes.append(f"no client_tool_result for {st.tool_call_id} in time")
                    return True
                return False
        return True
