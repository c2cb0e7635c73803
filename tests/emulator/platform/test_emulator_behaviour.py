"""Behaviour config parsing, agent profiles, override permissions, error bodies."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bridge.convai.messages import ConversationInitiationClientData, parse_client
from bridge.emulator.platform.behaviour import (
    Behaviour,
    EndCallStep,
    PlayStep,
    ToolCallStep,
    build_profile,
    parse_behaviour,
)
from bridge.emulator.platform.overrides import dynamic_variable_problem, override_problem
from bridge.emulator.platform.problems import body_for, error_code, msgspec_items
from bridge.errors import InputError
from bridge.platform.agents import CreateAgentRequest, OverrideSettings


def test_defaults_and_a_full_script() -> None:
    assert parse_behaviour(None) == Behaviour()
    b = parse_behaviour(
        {
            "mode": "loopback",
            "greeting": False,
            "vad": {"threshold_dbfs": -30, "end_silence_ms": 300},
            "steps": [
                {"type": "play", "ms": 250, "text": "hi"},
                {"type": "tool_call", "tool_name": "send_dtmf", "parameters": {"digits": "1"}},
                {"type": "end_call"},
            ],
        }
    )
    assert b.mode == "loopback" and not b.greeting
    assert b.vad.threshold_dbfs == -30 and b.vad.end_silence_ms == 300 and b.vad.min_speech_ms == 60
    assert b.steps == [
        PlayStep(ms=250, text="hi"),
        ToolCallStep(tool_name="send_dtmf", parameters={"digits": "1"}),
        EndCallStep(),
    ]


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"mode": "shout"}, "mode"),
        ({"bogus": 1}, "bogus"),
        ({"steps": [{"type": "dance"}]}, "steps"),
        ({"steps": [{"type": "wait", "ms": -5}]}, "ms"),
        ({"steps": [{"type": "close", "code": 999}]}, "code"),
        ({"steps": [{"type": "close", "code": 1006}]}, "1006"),
        ({"vad": {"threshold_dbfs": 3}}, "threshold_dbfs"),
    ],
)
def test_bad_behaviour_is_rejected_naming_the_place(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        parse_behaviour(raw)
    items = msgspec_items(info.value, ["x"])
    assert path in [str(p) for p in items[0].loc] or path in items[0].msg


def profile_of(body: dict[str, Any]):  # type: ignore[no-untyped-def]
    req = msgspec.convert(body, CreateAgentRequest)
    return build_profile("a1", "A", req.conversation_config, req.platform_settings or None)


def test_profile_defaults() -> None:
    p = profile_of({"conversation_config": {}})
    assert (p.input_format, p.output_format, p.first_message, p.language) == (
        "pcm_16000",
        "pcm_16000",
        "",
        "en",
    )
    assert not p.private and p.first_message_interruptible and p.max_duration_s is None


def test_profile_reads_the_fields_it_acts_on() -> None:
    p = profile_of(
        {
            "conversation_config": {
                "asr": {"user_input_audio_format": "ulaw_8000"},
                "tts": {"agent_output_audio_format": "pcm_44100"},
                "conversation": {"max_duration_seconds": 30, "text_only": True},
                "agent": {
                    "first_message": "hi",
                    "language": "de",
                    "disable_first_message_interruptions": True,
                    "prompt": {"prompt": "be brief"},
                    "emulator": {"mode": "silent"},
                },
            },
            "platform_settings": {"auth": {"enable_auth": True}},
        }
    )
    assert (p.input_format, p.output_format, p.first_message, p.language, p.prompt) == (
        "ulaw_8000",
        "pcm_44100",
        "hi",
        "de",
        "be brief",
    )
    assert p.private and not p.first_message_interruptible and p.text_only
    assert p.max_duration_s == 30.0 and p.behaviour.mode == "silent"


def client_data(**kw: Any) -> ConversationInitiationClientData:
    msg = parse_client(msgspec.json.encode({"type": "conversation_initiation_client_data", **kw}))
    assert isinstance(msg, ConversationInitiationClientData)
    return msg


def perms(raw: dict[str, Any]) -> OverrideSettings:
    return msgspec.convert(raw, OverrideSettings)


def test_overrides_need_permission_per_field() -> None:
    data = client_data(
        conversation_config_override={
            "agent": {"first_message": "x", "language": "fr", "prompt": {"prompt": "p"}},
            "tts": {"voice_id": "v"},
        }
    )
    problem = override_problem(data, OverrideSettings())
    assert problem is not None
    for name in ("agent.first_message", "agent.language", "agent.prompt.prompt", "tts.voice_id"):
        assert name in problem
    partial = perms(
        {"conversation_config_override": {"agent": {"first_message": True, "language": True}}}
    )
    problem = override_problem(data, partial)
    assert problem is not None and "agent.language" not in problem and "tts.voice_id" in problem
    full = perms(
        {
            "conversation_config_override": {
                "agent": {"first_message": True, "language": True, "prompt": {"prompt": True}},
                "tts": {"voice_id": True},
            }
        }
    )
    assert override_problem(data, full) is None


def test_what_the_official_sdk_sends_by_default_needs_no_permission() -> None:
    # The SDK sends empty objects (and a top-level text_only when it has no audio).
    data = client_data(
        custom_llm_extra_body={},
        conversation_config_override={"text_only": True},
        dynamic_variables={},
        source_info={"source": "python_sdk", "version": "2"},
    )
    assert override_problem(data, OverrideSettings()) is None
    assert override_problem(
        client_data(custom_llm_extra_body={"temperature": 0.1}), OverrideSettings()
    )


def test_reserved_dynamic_variables() -> None:
    assert dynamic_variable_problem(client_data(dynamic_variables={"caller_id": "+1"})) is None
    problem = dynamic_variable_problem(client_data(dynamic_variables={"system__time": "x"}))
    assert problem is not None and "system__time" in problem


def test_error_bodies() -> None:
    assert msgspec.to_builtins(body_for(InputError("body.phone_number", "bad"))) == {
        "detail": [{"loc": ["body", "phone_number"], "msg": "bad", "type": "value_error"}]
    }
    assert msgspec.to_builtins(body_for(InputError("query.agent_id", "Field required"))) == {
        "detail": [{"loc": ["query", "agent_id"], "msg": "Field required", "type": "missing"}]
    }
    assert msgspec.to_builtins(body_for(InputError("path.agent_id", "nope", status=404))) == {
        "detail": {"status": "agent_not_found", "message": "nope"}
    }
    assert error_code(400, "body.phone_number") == "invalid_phone_number"


def test_msgspec_errors_become_fastapi_items() -> None:
    class T(msgspec.Struct):
        a: int
        b: list[int] = []

    def items(raw: bytes) -> list[dict[str, Any]]:
        try:
            msgspec.json.decode(raw, type=T)
        except msgspec.DecodeError as e:  # ValidationError is a DecodeError
            return msgspec.to_builtins(msgspec_items(e, ["body"]))  # type: ignore[no-any-return]
        raise AssertionError("decoded")

    assert items(b"{}") == [{"loc": ["body", "a"], "msg": "Field required", "type": "missing"}]
    assert items(b'{"a": 1, "b": [1, "x"]}')[0]["loc"] == ["body", "b", 1]
    assert items(b'{"a": "1"}')[0]["type"] == "type_error"
    assert items(b"{oops")[0]["type"] == "json_invalid"
