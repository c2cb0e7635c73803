"""The shared REST models: wire shapes of the seeds, UNSET vs null, tagged variants."""

from __future__ import annotations

import msgspec
import pytest

from bridge.platform.agents import Agent, ClientToolConfig, CreateAgentRequest, SystemToolConfig
from bridge.platform.invocations import TestInvocationsPage
from bridge.platform.phone_numbers import (
    CreateSipTrunkPhoneNumberRequest,
    CreateTwilioPhoneNumberRequest,
    PhoneNumber,
    SipTrunkPhoneNumber,
    TwilioPhoneNumber,
    UpdatePhoneNumberRequest,
)
from bridge.platform.workspace import CreateSecretRequest, SecretsList, UpdateSecretRequest

enc = msgspec.json.encode


def test_update_distinguishes_unset_from_null() -> None:
    assert enc(UpdatePhoneNumberRequest()) == b"{}"
    assert enc(UpdatePhoneNumberRequest(agent_id=None)) == b'{"agent_id":null}'
    assert enc(UpdatePhoneNumberRequest(agent_id="agent_1")) == b'{"agent_id":"agent_1"}'
    assert msgspec.json.decode(b"{}", type=UpdatePhoneNumberRequest).agent_id is msgspec.UNSET
    assert msgspec.json.decode(b'{"agent_id":null}', type=UpdatePhoneNumberRequest).agent_id is None


def test_create_requests_carry_their_provider() -> None:
    tw = CreateTwilioPhoneNumberRequest(
        phone_number="+14155550100", label="l", sid="AC1", token="t"
    )
    assert msgspec.json.decode(enc(tw)) == {
        "provider": "twilio",
        "phone_number": "+14155550100",
        "label": "l",
        "sid": "AC1",
        "token": "t",
    }
    sip = CreateSipTrunkPhoneNumberRequest(phone_number="+1", label="l")
    assert msgspec.json.decode(enc(sip))["provider"] == "sip_trunk"
    assert enc(CreateSecretRequest(name="n", value="v")) == b'{"type":"new","name":"n","value":"v"}'
    assert enc(UpdateSecretRequest(name="n", value="v")).startswith(b'{"type":"update"')


def test_phone_number_responses_decode_by_provider() -> None:
    items = msgspec.json.decode(
        b'[{"provider":"twilio","phone_number":"+1","label":"a","phone_number_id":"p1",'
        b'"assigned_agent":{"agent_id":"a1","agent_name":"A"},"future_field":1},'
        b'{"provider":"sip_trunk","phone_number":"+2","label":"b","phone_number_id":"p2",'
        b'"livekit_stack":"standard","inbound_trunk":null}]',
        type=list[PhoneNumber],
    )
    assert isinstance(items[0], TwilioPhoneNumber) and items[0].assigned_agent is not None
    assert isinstance(items[1], SipTrunkPhoneNumber) and items[1].inbound_trunk is None
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"provider":"exotel","phone_number":"+1"}', type=PhoneNumber)


def test_agent_config_round_trips_what_was_given() -> None:
    body = {
        "name": "n",
        "conversation_config": {
            "asr": {"user_input_audio_format": "ulaw_8000"},
            "turn": {"turn_timeout": 7, "soft_timeout_config": {"timeout_seconds": 3}},
            "agent": {
                "first_message": "hi",
                "prompt": {
                    "prompt": "p",
                    "built_in_tools": {
                        "end_call": {"name": "end_call", "params": {"system_tool_type": "end_call"}}
                    },
                    "tools": [
                        {
                            "type": "client",
                            "name": "transfer_call",
                            "description": "d",
                            "parameters": {"type": "object"},
                        },
                        {
                            "type": "system",
                            "name": "end_call",
                            "params": {"system_tool_type": "end_call"},
                        },
                    ],
                },
                "emulator": {"mode": "echo"},
            },
        },
        "platform_settings": {"auth": {"enable_auth": True}, "privacy": {"record_voice": False}},
    }
    req = msgspec.convert(body, CreateAgentRequest)
    tools = req.conversation_config.agent.prompt.tools  # type: ignore[union-attr]
    assert isinstance(tools[0], ClientToolConfig) and isinstance(tools[1], SystemToolConfig)  # type: ignore[index]
    assert msgspec.to_builtins(req) == body


def test_agent_response_tolerates_fields_we_do_not_model() -> None:
    agent = msgspec.json.decode(
        b'{"agent_id":"a","name":"n","conversation_config":{"asr":{"user_input_audio_format":"pcm_16000",'
        b'"quality":"high","provider":"elevenlabs"},"new_section":{}},"metadata":{"created_at_unix_secs":1,'
        b'"updated_at_unix_secs":2},"version_id":"v1"}',
        type=Agent,
    )
    assert (
        agent.conversation_config.asr
        and agent.conversation_config.asr.user_input_audio_format == "pcm_16000"
    )
    assert agent.phone_numbers == [] and agent.tags == []


def test_secret_list_and_invocation_page_shapes() -> None:
    secrets = msgspec.json.decode(
        b'{"secrets":[{"type":"stored","secret_id":"s","name":"n","used_by":{"tools":[],'
        b'"agents":[{"type":"available","id":"a","name":"A","created_at_unix_secs":1,"access_level":"admin"},'
        b'{"type":"unknown"}],"others":["conversation_initiation_webhook"]}}]}',
        type=SecretsList,
    )
    assert len(secrets.secrets[0].used_by.agents) == 2
    page = msgspec.json.decode(
        b'{"results":[{"id":"i","created_at_unix_secs":1,"test_run_count":2,"passed_count":1,'
        b'"failed_count":1,"pending_count":0,"title":"t"}],"has_more":false,"next_cursor":null}',
        type=TestInvocationsPage,
    )
    assert page.results[0].cancelled_count == 0 and page.meta is None
