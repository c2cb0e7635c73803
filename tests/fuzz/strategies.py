"""Hypothesis strategies for the wire parsers: any text, and valid messages bent out of shape.

Random text rarely gets past a JSON parser, so most examples start from a real message
of the protocol (``reference/protocols.md``) and change one or more places in it: a value
replaced by any JSON value, a key deleted, a key added, the whole thing truncated.  That
reaches the validation code behind the JSON parser, where the interesting bugs are.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)

SID = "MZ" + "a" * 32
CALL = "CA" + "b" * 32

TWILIO_MESSAGES: list[dict[str, Any]] = [
    {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC" + "c" * 32,
            "streamSid": SID,
            "callSid": CALL,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"agent_id": "agent_x", "caller_id": "+14155550111"},
        },
        "streamSid": SID,
    },
    {
        "event": "media",
        "sequenceNumber": "2",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "/////w=="},
        "streamSid": SID,
    },
    {
        "event": "dtmf",
        "streamSid": SID,
        "sequenceNumber": "3",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    },
    {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "audio-1"}},
    {
        "event": "stop",
        "sequenceNumber": "5",
        "stop": {"accountSid": "AC" + "c" * 32, "callSid": CALL},
        "streamSid": SID,
    },
]

CONVAI_SERVER_MESSAGES: list[dict[str, Any]] = [
    {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": "conv_1",
            "agent_output_audio_format": "pcm_16000",
            "user_input_audio_format": "pcm_16000",
        },
    },
    {"type": "audio", "audio_event": {"audio_base_64": "AAAAAA==", "event_id": 1}},
    {"type": "interruption", "interruption_event": {"event_id": 7}},
    {"type": "ping", "ping_event": {"event_id": 12345, "ping_ms": 50}},
    {"type": "agent_response", "agent_response_event": {"agent_response": "hi"}},
    {"type": "user_transcript", "user_transcription_event": {"user_transcript": "hello"}},
    {
        "type": "client_tool_call",
        "client_tool_call": {"tool_name": "x", "tool_call_id": "t1", "parameters": {}},
    },
    {"type": "agent_tool_response", "agent_tool_response": {"tool_name": "end_call",
                                                            "tool_call_id": "t2",
                                                            "tool_type": "system"}},
    {"type": "vad_score", "vad_score_event": {"vad_score": 0.5}},
]  # fmt: skip

CONVAI_CLIENT_MESSAGES: list[dict[str, Any]] = [
    {
        "type": "conversation_initiation_client_data",
        "conversation_config_override": {"agent": {"first_message": "hi", "language": "en"}},
        "dynamic_variables": {"caller_id": "+1"},
    },
    {"user_audio_chunk": "AAAA"},
    {"type": "pong", "event_id": 12345},
    {"type": "client_tool_result", "tool_call_id": "t1", "result": "ok", "is_error": False},
    {"type": "contextual_update", "text": "x"},
    {"type": "user_message", "text": "x"},
    {"type": "user_activity"},
]


@st.composite
def mutated(draw: st.DrawFn, messages: list[dict[str, Any]]) -> str:
    """A real message with 1-3 places changed, as JSON text (sometimes cut short)."""
    msg: Any = json.loads(json.dumps(draw(st.sampled_from(messages))))
    for _ in range(draw(st.integers(1, 3))):
        # Walk down to a random container, then change one of its entries.
        node = msg
        while True:
            children = (
                list(node.items()) if isinstance(node, dict) else list(enumerate(node))
                if isinstance(node, list) else []
            )  # fmt: skip
            containers = [(k, v) for k, v in children if isinstance(v, dict | list) and v]
            if not containers or draw(st.booleans()):
                break
            _, node = draw(st.sampled_from(containers))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if isinstance(node, dict):
            keys = list(node)
            if action == "add" or not keys:
                node[draw(st.text(max_size=12))] = draw(JSON_VALUES)
            elif action == "delete":
                del node[draw(st.sampled_from(keys))]
            else:
                node[draw(st.sampled_from(keys))] = draw(JSON_VALUES)
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = draw(JSON_VALUES)
    text = json.dumps(msg)
    if draw(st.integers(0, 9)) == 0:  # truncated
        text = text[: draw(st.integers(0, len(text)))]
    return text


def frames(messages: list[dict[str, Any]]) -> st.SearchStrategy[str | bytes]:
    """Any frame a broken or hostile peer might send."""
    return (
        mutated(messages)
        | st.sampled_from([json.dumps(m) for m in messages])
        | st.text(max_size=200)
        | st.binary(max_size=200)
    )
