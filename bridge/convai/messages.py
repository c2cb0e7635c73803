"""Typed messages of the Agents Platform conversation WebSocket, both directions.

Shapes follow the AsyncAPI of seed 004 and ``reference/protocols.md`` §4.  Pure code:
``parse_server`` / ``parse_client`` take a text frame and return a message struct (or
:class:`UnknownMessage` for a ``type`` we do not model, which callers ignore);
``encode`` turns any struct back into the JSON text frame.

Decoding is strict about the fields we act on (an ``audio`` event without
``audio_base_64`` is a :class:`~bridge.errors.ConvaiProtocolError`), and lenient about
fields we do not model (ignored) and optional fields sent as ``null`` (the official SDK
sends ``"dynamic_variables": null``).  msgspec does the JSON work because these frames
are on the per-20-ms path of every call.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bridge.errors import ConvaiProtocolError

DynamicValue = str | int | float | bool

# --------------------------------------------------------------------------- server → client


class ConversationInitiationMetadataEvent(msgspec.Struct):
    # Formats always encoded (the platform always sends them); defaults apply on decode.
    conversation_id: str
    agent_output_audio_format: str = "pcm_16000"
    user_input_audio_format: str = "pcm_16000"


class ConversationInitiationMetadata(
    msgspec.Struct, tag_field="type", tag="conversation_initiation_metadata"
):
    conversation_initiation_metadata_event: ConversationInitiationMetadataEvent


class AudioEvent(msgspec.Struct, omit_defaults=True):
    audio_base_64: str
    event_id: int


class Audio(msgspec.Struct, tag_field="type", tag="audio"):
    audio_event: AudioEvent


class InterruptionEvent(msgspec.Struct):
    event_id: int


class Interruption(msgspec.Struct, tag_field="type", tag="interruption"):
    interruption_event: InterruptionEvent


class PingEvent(msgspec.Struct, omit_defaults=True):
    event_id: int
    ping_ms: int | None = None


class Ping(msgspec.Struct, tag_field="type", tag="ping"):
    ping_event: PingEvent


class AgentResponseEvent(msgspec.Struct):
    agent_response: str


class AgentResponse(msgspec.Struct, tag_field="type", tag="agent_response"):
    agent_response_event: AgentResponseEvent


class AgentResponseCorrectionEvent(msgspec.Struct):
    original_agent_response: str
    corrected_agent_response: str


class AgentResponseCorrection(msgspec.Struct, tag_field="type", tag="agent_response_correction"):
    agent_response_correction_event: AgentResponseCorrectionEvent


class UserTranscriptionEvent(msgspec.Struct):
    user_transcript: str


class UserTranscript(msgspec.Struct, tag_field="type", tag="user_transcript"):
    user_transcription_event: UserTranscriptionEvent


class ClientToolCallBody(msgspec.Struct, omit_defaults=True):
    tool_name: str
    tool_call_id: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


class ClientToolCall(msgspec.Struct, tag_field="type", tag="client_tool_call"):
    client_tool_call: ClientToolCallBody


class VadScoreEvent(msgspec.Struct):
    vad_score: float


class VadScore(msgspec.Struct, tag_field="type", tag="vad_score"):
    vad_score_event: VadScoreEvent


class TentativeAgentResponseEvent(msgspec.Struct):
    tentative_agent_response: str


class InternalTentativeAgentResponse(
    msgspec.Struct, tag_field="type", tag="internal_tentative_agent_response"
):
    tentative_agent_response_internal_event: TentativeAgentResponseEvent


class AgentToolResponseEvent(msgspec.Struct, omit_defaults=True):
    tool_name: str
    tool_call_id: str = ""
    tool_type: str = ""
    is_error: bool = False


class AgentToolResponse(msgspec.Struct, tag_field="type", tag="agent_tool_response"):
    """The agent ran one of its own (system/server) tools, e.g. ``end_call``."""

    agent_tool_response: AgentToolResponseEvent


# ContextualUpdate travels both ways (seed 004 lists it in subscribe and publish).
class ContextualUpdate(msgspec.Struct, tag_field="type", tag="contextual_update"):
    text: str


ServerMessage = (
    ConversationInitiationMetadata
    | Audio
    | Interruption
    | Ping
    | AgentResponse
    | AgentResponseCorrection
    | UserTranscript
    | ClientToolCall
    | ContextualUpdate
    | VadScore
    | InternalTentativeAgentResponse
    | AgentToolResponse
)

# --------------------------------------------------------------------------- client → server


class UserAudioChunk(msgspec.Struct):
    """Caller audio, base64 in the agent's ``user_input_audio_format``. Has no ``type``."""

    user_audio_chunk: str


class Pong(msgspec.Struct, tag_field="type", tag="pong"):
    event_id: int


class PromptOverride(msgspec.Struct, omit_defaults=True):
    prompt: str | None = None


class AgentOverride(msgspec.Struct, omit_defaults=True):
    prompt: PromptOverride | None = None
    first_message: str | None = None
    language: str | None = None


class TtsOverride(msgspec.Struct, omit_defaults=True):
    voice_id: str | None = None


class ConversationConfigOverride(msgspec.Struct, omit_defaults=True):
    agent: AgentOverride | None = None
    tts: TtsOverride | None = None


class CustomLlmExtraBody(msgspec.Struct, omit_defaults=True):
    temperature: float | None = None
    max_tokens: int | None = None


class ConversationInitiationClientData(
    msgspec.Struct,
    tag_field="type",
    tag="conversation_initiation_client_data",
    omit_defaults=True,
):
    conversation_config_override: ConversationConfigOverride | None = None
    custom_llm_extra_body: CustomLlmExtraBody | None = None
    dynamic_variables: dict[str, DynamicValue] | None = None
    user_id: str | None = None
    source_info: dict[str, Any] | None = None


class ClientToolResult(msgspec.Struct, tag_field="type", tag="client_tool_result"):
    tool_call_id: str
    result: str = ""
    is_error: bool = False


class UserMessage(msgspec.Struct, tag_field="type", tag="user_message"):
    text: str


class UserActivity(msgspec.Struct, tag_field="type", tag="user_activity"):
    pass


ClientMessage = (
    Pong
    | ConversationInitiationClientData
    | ClientToolResult
    | ContextualUpdate
    | UserMessage
    | UserActivity
)


class UnknownMessage(msgspec.Struct):
    """A well-formed JSON object whose ``type`` we do not model; callers ignore it."""

    type: str


class _TypeOnly(msgspec.Struct):
    type: str | None = None


_server_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)
_client_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
_audio_chunk_decoder = msgspec.json.Decoder(UserAudioChunk)
_type_decoder = msgspec.json.Decoder(_TypeOnly)
_encoder = msgspec.json.Encoder()

_SERVER_TYPES = frozenset(t.__struct_config__.tag for t in ServerMessage.__args__)
_CLIENT_TYPES = frozenset(t.__struct_config__.tag for t in ClientMessage.__args__)


def _fallback(data: str | bytes, known: frozenset[str], err: Exception) -> UnknownMessage:
    """After a failed typed decode: unknown ``type`` → UnknownMessage, else protocol error."""
    try:
        head = _type_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ConvaiProtocolError(f"expected a JSON object with a 'type' string: {e}") from None
    if head.type is None:
        raise ConvaiProtocolError("expected a 'type' field, message has none") from None
    if head.type in known:
        raise ConvaiProtocolError(f"malformed {head.type!r} message: {err}") from None
    return UnknownMessage(type=head.type)


def parse_server(data: str | bytes) -> ServerMessage | UnknownMessage:
    """Parse a frame the platform sent to the client (the bridge side)."""
    try:
        return _server_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        return _fallback(data, _SERVER_TYPES, e)


def parse_client(data: str | bytes) -> ClientMessage | UserAudioChunk | UnknownMessage:
    """Parse a frame a client sent to the platform (the emulator side)."""
    is_chunk = (
        b'"user_audio_chunk"' in data[:40]
        if isinstance(data, bytes)
        else '"user_audio_chunk"' in data[:40]
    )
    if is_chunk:
        try:
            return _audio_chunk_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ConvaiProtocolError(f"malformed user_audio_chunk message: {e}") from None
    try:
        return _client_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        return _fallback(data, _CLIENT_TYPES, e)


def encode(msg: msgspec.Struct) -> bytes:
    """JSON bytes of a message (send as a *text* frame: ``ws.send(data.decode())``)."""
    return _encoder.encode(msg)


def encode_str(msg: msgspec.Struct) -> str:
    return _encoder.encode(msg).decode()


def user_audio_chunk_frame(payload_b64: str) -> str:
    """The hot-path caller-audio frame, built without a struct (base64 needs no escaping)."""
    return '{"user_audio_chunk":"' + payload_b64 + '"}'
