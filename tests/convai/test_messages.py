"""Conversation WebSocket messages: exact shapes, round trips, and that nothing a peer
sends can raise anything but ConvaiProtocolError."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.convai.messages import (
    AgentOverride,
    AgentResponse,
    AgentResponseCorrection,
    AgentResponseCorrectionEvent,
    AgentResponseEvent,
    AgentToolResponse,
    AgentToolResponseEvent,
    Audio,
    AudioEvent,
    ClientToolCall,
    ClientToolCallBody,
    ClientToolResult,
    ContextualUpdate,
    ConversationConfigOverride,
    ConversationInitiationClientData,
    ConversationInitiationMetadata,
    ConversationInitiationMetadataEvent,
    Interruption,
    InterruptionEvent,
    Ping,
    PingEvent,
    Pong,
    PromptOverride,
    TtsOverride,
    UnknownMessage,
    UserActivity,
    UserAudioChunk,
    UserMessage,
    UserTranscript,
    UserTranscriptionEvent,
    VadScore,
    VadScoreEvent,
    encode,
    encode_str,
    parse_client,
    parse_server,
    user_audio_chunk_frame,
)
from bridge.errors import ConvaiProtocolError

# --------------------------------------------------------------------------- exact shapes


def test_server_frames_match_the_reference_shapes() -> None:
    assert json.loads(encode(Ping(ping_event=PingEvent(event_id=7, ping_ms=50)))) == {
        "type": "ping",
        "ping_event": {"event_id": 7, "ping_ms": 50},
    }
    assert json.loads(encode(Audio(audio_event=AudioEvent(audio_base_64="AAA=", event_id=1)))) == {
        "type": "audio",
        "audio_event": {"audio_base_64": "AAA=", "event_id": 1},
    }
    assert json.loads(encode(Interruption(interruption_event=InterruptionEvent(event_id=3)))) == {
        "type": "interruption",
        "interruption_event": {"event_id": 3},
    }
    meta = ConversationInitiationMetadata(
        conversation_initiation_metadata_event=ConversationInitiationMetadataEvent(
            conversation_id="c1"
        )
    )
    assert json.loads(encode(meta)) == {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": "c1",
            "agent_output_audio_format": "pcm_16000",
            "user_input_audio_format": "pcm_16000",
        },
    }
    call = ClientToolCall(client_tool_call=ClientToolCallBody(tool_name="x", tool_call_id="t1"))
    assert json.loads(encode(call)) == {
        "type": "client_tool_call",
        "client_tool_call": {"tool_name": "x", "tool_call_id": "t1"},
    }


def test_client_frames_match_the_reference_shapes() -> None:
    assert user_audio_chunk_frame("AAA=") == '{"user_audio_chunk":"AAA="}'
    assert parse_client(user_audio_chunk_frame("AAA=")) == UserAudioChunk(user_audio_chunk="AAA=")
    assert json.loads(encode_str(Pong(event_id=5))) == {"type": "pong", "event_id": 5}
    assert json.loads(encode_str(UserActivity())) == {"type": "user_activity"}
    result = ClientToolResult(tool_call_id="t1", result="ok", is_error=False)
    assert json.loads(encode_str(result)) == {
        "type": "client_tool_result",
        "tool_call_id": "t1",
        "result": "ok",
        "is_error": False,
    }


def test_what_the_official_sdk_sends_parses() -> None:
    # Copied from elevenlabs' conversation.py: nulls and extra keys included.
    sdk = {
        "type": "conversation_initiation_client_data",
        "custom_llm_extra_body": {},
        "conversation_config_override": {"agent": {"first_message": "hi"}, "text_only": True},
        "dynamic_variables": {"caller_id": "+1", "n": 2, "ok": True, "x": 1.5},
        "source_info": {"source": "python_sdk", "version": "2.78.0"},
        "user_id": "u",
    }
    msg = parse_client(json.dumps(sdk))
    assert isinstance(msg, ConversationInitiationClientData)
    assert msg.dynamic_variables == {"caller_id": "+1", "n": 2, "ok": True, "x": 1.5}
    assert msg.conversation_config_override == ConversationConfigOverride(
        agent=AgentOverride(first_message="hi")
    )
    assert parse_client('{"type":"conversation_initiation_client_data","dynamic_variables":null}')
    assert parse_client('{"type":"pong","event_id":12345}') == Pong(event_id=12345)


def test_unknown_types_are_returned_not_raised() -> None:
    assert parse_server('{"type":"mcp_tool_call","x":1}') == UnknownMessage(type="mcp_tool_call")
    assert parse_client('{"type":"feedback","score":"like"}') == UnknownMessage(type="feedback")


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "[]",
        "{}",
        "null",
        '{"type": 5}',
        '{"type":"audio"}',
        '{"type":"audio","audio_event":{"event_id":"one","audio_base_64":"x"}}',
        '{"type":"ping","ping_event":{}}',
        "{not json",
    ],
)
def test_malformed_server_frames_raise_protocol_errors(frame: str) -> None:
    with pytest.raises(ConvaiProtocolError):
        parse_server(frame)


@pytest.mark.parametrize(
    "frame",
    [
        '{"user_audio_chunk": 5}',
        '{"user_audio_chunk": null}',
        '{"type":"pong"}',
        '{"type":"user_message"}',
        "[1]",
    ],
)
def test_malformed_client_frames_raise_protocol_errors(frame: str) -> None:
    with pytest.raises(ConvaiProtocolError):
        parse_client(frame)


# --------------------------------------------------------------------------- properties

text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
ids = st.integers(min_value=0, max_value=2**53)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text
params = st.dictionaries(text, json_scalars, max_size=4)
dyn = st.dictionaries(text, st.booleans() | st.integers(-(2**53), 2**53) | text, max_size=4)

server_messages = st.one_of(
    st.builds(
        lambda c, a, u: ConversationInitiationMetadata(
            conversation_initiation_metadata_event=ConversationInitiationMetadataEvent(
                conversation_id=c, agent_output_audio_format=a, user_input_audio_format=u
            )
        ),
        text,
        text,
        text,
    ),
    st.builds(lambda b, i: Audio(audio_event=AudioEvent(audio_base_64=b, event_id=i)), text, ids),
    st.builds(lambda i: Interruption(interruption_event=InterruptionEvent(event_id=i)), ids),
    st.builds(
        lambda i, ms: Ping(ping_event=PingEvent(event_id=i, ping_ms=ms)), ids, st.none() | ids
    ),
    st.builds(
        lambda t: AgentResponse(agent_response_event=AgentResponseEvent(agent_response=t)), text
    ),
    st.builds(
        lambda a, b: AgentResponseCorrection(
            agent_response_correction_event=AgentResponseCorrectionEvent(
                original_agent_response=a, corrected_agent_response=b
            )
        ),
        text,
        text,
    ),
    st.builds(
        lambda t: UserTranscript(
            user_transcription_event=UserTranscriptionEvent(user_transcript=t)
        ),
        text,
    ),
    st.builds(
        lambda n, i, p: ClientToolCall(
            client_tool_call=ClientToolCallBody(tool_name=n, tool_call_id=i, parameters=p)
        ),
        text,
        text,
        params,
    ),
    st.builds(lambda t: ContextualUpdate(text=t), text),
    st.builds(lambda v: VadScore(vad_score_event=VadScoreEvent(vad_score=v)), st.floats(0, 1)),
    st.builds(
        lambda n, i, t, e: AgentToolResponse(
            agent_tool_response=AgentToolResponseEvent(
                tool_name=n, tool_call_id=i, tool_type=t, is_error=e
            )
        ),
        text,
        text,
        text,
        st.booleans(),
    ),
)

client_messages = st.one_of(
    st.builds(UserAudioChunk, user_audio_chunk=text),
    st.builds(Pong, event_id=ids),
    st.builds(ClientToolResult, tool_call_id=text, result=text, is_error=st.booleans()),
    st.builds(ContextualUpdate, text=text),
    st.builds(UserMessage, text=text),
    st.just(UserActivity()),
    st.builds(
        ConversationInitiationClientData,
        conversation_config_override=st.none()
        | st.builds(
            ConversationConfigOverride,
            agent=st.none()
            | st.builds(
                AgentOverride,
                prompt=st.none() | st.builds(PromptOverride, prompt=st.none() | text),
                first_message=st.none() | text,
                language=st.none() | text,
            ),
            tts=st.none() | st.builds(TtsOverride, voice_id=st.none() | text),
        ),
        dynamic_variables=st.none() | dyn,
        user_id=st.none() | text,
    ),
)


@settings(max_examples=300)
@given(server_messages)
def test_server_round_trip(msg: Any) -> None:
    assert parse_server(encode(msg)) == msg
    assert parse_server(encode_str(msg)) == msg


@settings(max_examples=300)
@given(client_messages)
def test_client_round_trip(msg: Any) -> None:
    assert parse_client(encode(msg)) == msg
    assert parse_client(encode_str(msg)) == msg


def _only_protocol_errors(parse: Any, data: str | bytes) -> None:
    with contextlib.suppress(ConvaiProtocolError):
        parse(data)


@settings(max_examples=300)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_random_input_raises_only_protocol_errors(data: str | bytes) -> None:
    _only_protocol_errors(parse_server, data)
    _only_protocol_errors(parse_client, data)


json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=10,
)
known_types = st.sampled_from(
    [
        "audio",
        "ping",
        "pong",
        "interruption",
        "client_tool_call",
        "client_tool_result",
        "conversation_initiation_client_data",
        "conversation_initiation_metadata",
        "user_message",
        "contextual_update",
        "agent_response",
        "user_transcript",
        "agent_tool_response",
    ]
)


@settings(max_examples=300)
@given(
    st.dictionaries(
        text | st.sampled_from(["user_audio_chunk", "event_id", "audio_event"]),
        json_values,
        max_size=4,
    ),
    st.none() | known_types | text,
)
def test_random_json_objects_raise_only_protocol_errors(
    body: dict[str, Any], kind: str | None
) -> None:
    if kind is not None:
        body = {"type": kind, **body}
    data = msgspec.json.encode(body)
    _only_protocol_errors(parse_server, data)
    _only_protocol_errors(parse_client, data)
    _only_protocol_errors(parse_client, data.decode())
