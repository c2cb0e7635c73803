"""PlatformState without HTTP: resources, validation, pagination, persistence."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bridge.emulator.platform.seeds import SEEDED_AGENTS
from bridge.emulator.platform.state import Fault, PlatformState
from bridge.errors import InputError
from bridge.platform.agents import CreateAgentRequest
from bridge.platform.phone_numbers import (
    CreateSipTrunkPhoneNumberRequest,
    CreateTwilioPhoneNumberRequest,
    SipTrunkPhoneNumber,
    TwilioPhoneNumber,
    UpdatePhoneNumberRequest,
)
from bridge.platform.widget import ImageAvatar, OrbAvatar
from bridge.platform.workspace import (
    CreateSecretRequest,
    PatchConvAISettingsRequest,
    UpdateSecretRequest,
)


def twilio(number: str = "+14155550100", **kw: Any) -> CreateTwilioPhoneNumberRequest:
    return CreateTwilioPhoneNumberRequest(
        phone_number=number, label=kw.pop("label", "main"), sid="AC123", token="tok", **kw
    )


def agent(state: PlatformState, **body: Any) -> str:
    return state.create_agent(
        msgspec.convert({"conversation_config": {}, **body}, CreateAgentRequest)
    )


@contextlib.contextmanager
def raises(status: int, field: str) -> Iterator[None]:
    with pytest.raises(InputError) as info:
        yield
    assert (info.value.status, info.value.field) == (status, field), info.value.problem


def test_seeded_agents() -> None:
    state = PlatformState()
    assert set(SEEDED_AGENTS) <= set(state.agents)
    assert state.profile("agent_emulator_echo_ulaw").input_format == "ulaw_8000"
    assert state.profile("agent_emulator_private").private
    assert PlatformState(seed=False).agents == {}


def test_twilio_number_lifecycle() -> None:
    state = PlatformState()
    pid = state.create_phone_number(twilio())
    view = state.get_phone_number(pid)
    assert isinstance(view, TwilioPhoneNumber) and view.assigned_agent is None
    assert (view.phone_number, view.label, view.supports_inbound) == ("+14155550100", "main", True)
    view = state.update_phone_number(pid, UpdatePhoneNumberRequest(agent_id="agent_emulator_echo"))
    assert view.assigned_agent is not None
    assert (view.assigned_agent.agent_id, view.assigned_agent.agent_name) == (
        "agent_emulator_echo",
        "Emulator echo",
    )
    # unset leaves it; null unassigns
    view = state.update_phone_number(pid, UpdatePhoneNumberRequest(label="renamed"))
    assert view.assigned_agent is not None and view.label == "renamed"
    view = state.update_phone_number(pid, UpdatePhoneNumberRequest(agent_id=None))
    assert view.assigned_agent is None
    assert [p.phone_number_id for p in state.list_phone_numbers()] == [pid]
    state.delete_phone_number(pid)
    with raises(404, "path.phone_number_id"):
        state.get_phone_number(pid)
    with raises(404, "path.phone_number_id"):
        state.delete_phone_number(pid)


@pytest.mark.parametrize("number", ["4155550100", "+0123", "+1", "+1415555010012345", "+1 415 555"])
def test_malformed_e164(number: str) -> None:
    with raises(422, "body.phone_number"):
        PlatformState().create_phone_number(twilio(number))


def test_duplicates_and_empty_fields() -> None:
    state = PlatformState()
    state.create_phone_number(twilio())
    with raises(400, "body.phone_number"):
        state.create_phone_number(twilio())
    with raises(422, "body.label"):
        state.create_phone_number(twilio("+14155550101", label=" "))
    with raises(422, "body.sid"):
        state.create_phone_number(
            CreateTwilioPhoneNumberRequest(
                phone_number="+14155550102", label="x", sid="", token="t"
            )
        )


def test_unknown_agent_on_assign() -> None:
    state = PlatformState()
    pid = state.create_phone_number(twilio())
    with raises(404, "body.agent_id"):
        state.update_phone_number(pid, UpdatePhoneNumberRequest(agent_id="agent_nope"))


def test_trunk_config_is_for_sip_numbers_only() -> None:
    state = PlatformState()
    pid = state.create_phone_number(twilio())
    req = msgspec.convert(
        {"outbound_trunk_config": {"address": "sip.example.com"}}, UpdatePhoneNumberRequest
    )
    with raises(422, "body.inbound_trunk_config"):
        state.update_phone_number(pid, req)


def test_sip_trunk_number_views_hide_passwords() -> None:
    state = PlatformState()
    req = msgspec.convert(
        {
            "provider": "sip_trunk",
            "phone_number": "+442071234567",
            "label": "sip",
            "inbound_trunk_config": {
                "allowed_addresses": ["10.0.0.1"],
                "credentials": {"username": "in", "password": "pw"},
            },
            "outbound_trunk_config": {
                "address": "sip.example.com",
                "transport": "tls",
                "credentials": {"username": "out"},
            },
        },
        CreateSipTrunkPhoneNumberRequest,
    )
    pid = state.create_phone_number(req)
    view = state.get_phone_number(pid)
    assert isinstance(view, SipTrunkPhoneNumber) and view.livekit_stack == "standard"
    assert view.inbound_trunk is not None and view.outbound_trunk is not None
    assert (view.inbound_trunk.has_auth_credentials, view.inbound_trunk.username) == (True, "in")
    assert (view.outbound_trunk.has_auth_credentials, view.outbound_trunk.username) == (
        False,
        "out",
    )
    assert view.outbound_trunk.transport == "tls" and view.provider_config == view.outbound_trunk
    assert "pw" not in msgspec.json.encode(view).decode()
    upd = msgspec.convert(
        {"outbound_trunk_config": None, "livekit_stack": "static"}, UpdatePhoneNumberRequest
    )
    view = state.update_phone_number(pid, upd)
    assert isinstance(view, SipTrunkPhoneNumber)
    assert (
        view.outbound_trunk is None
        and view.livekit_stack == "static"
        and view.inbound_trunk is not None
    )


def test_agent_get_fills_defaults_and_lists_numbers() -> None:
    state = PlatformState(seed=False)
    aid = agent(state, name="Support", tags=["t1"])
    pid = state.create_phone_number(twilio())
    state.update_phone_number(pid, UpdatePhoneNumberRequest(agent_id=aid))
    got = state.get_agent(aid)
    assert got.name == "Support" and got.tags == ["t1"]
    cc = got.conversation_config
    assert cc.asr and cc.asr.user_input_audio_format == "pcm_16000"
    assert cc.tts and cc.tts.agent_output_audio_format == "pcm_16000"
    assert cc.agent and (cc.agent.first_message, cc.agent.language) == ("", "en")
    assert [p.phone_number_id for p in got.phone_numbers] == [pid]
    with raises(404, "path.agent_id"):
        state.get_agent("agent_missing")


def test_bad_emulator_behaviour_is_a_422_at_create() -> None:
    state = PlatformState(seed=False)
    with pytest.raises(InputError) as info:
        agent(state, conversation_config={"agent": {"emulator": {"steps": [{"type": "fly"}]}}})
    assert info.value.status == 422
    assert info.value.field.startswith("body.conversation_config.agent.emulator.steps.0")
    assert state.agents == {}


def test_agent_list_pagination_and_search() -> None:
    state = PlatformState(seed=False)
    ids = [agent(state, name=f"agent {i}") for i in range(5)]
    page = state.list_agents(page_size=2)
    assert [a.agent_id for a in page.agents] == ids[::-1][:2] and page.has_more
    seen = [a.agent_id for a in page.agents]
    while page.next_cursor:
        page = state.list_agents(page_size=2, cursor=page.next_cursor)
        seen += [a.agent_id for a in page.agents]
    assert seen == ids[::-1] and not page.has_more
    assert [a.name for a in state.list_agents(search="AGENT 3").agents] == ["agent 3"]
    with raises(422, "query.page_size"):
        state.list_agents(page_size=101)
    with raises(422, "query.cursor"):
        state.list_agents(cursor="garbage")


def test_secrets_and_what_uses_them() -> None:
    state = PlatformState(seed=False)
    s1 = state.create_secret(CreateSecretRequest(name="llm-key", value="v1"))
    with raises(400, "body.name"):
        state.create_secret(CreateSecretRequest(name="llm-key", value="v2"))
    aid = agent(
        state,
        name="uses secret",
        conversation_config={
            "agent": {
                "prompt": {
                    "custom_llm": {"url": "http://x", "api_key": {"secret_id": s1.secret_id}}
                }
            }
        },
    )
    agent(state, name="does not")
    state.update_settings(
        msgspec.convert(
            {
                "conversation_initiation_client_data_webhook": {
                    "url": "https://hook",
                    "request_headers": {"auth": {"secret_id": s1.secret_id}},
                }
            },
            PatchConvAISettingsRequest,
        )
    )
    (listed,) = state.list_secrets()
    assert [a.id for a in listed.used_by.agents] == [aid]  # type: ignore[union-attr]
    assert listed.used_by.others == ["conversation_initiation_webhook"]
    out = state.update_secret(s1.secret_id, UpdateSecretRequest(name="renamed", value="v3"))
    assert out.name == "renamed" and state.secrets[s1.secret_id].value == "v3"
    with raises(404, "path.secret_id"):
        state.update_secret("nope", UpdateSecretRequest(name="x", value="y"))
    assert "v3" not in msgspec.json.encode(state.list_secrets()).decode()


def test_settings_patch_only_changes_what_is_given() -> None:
    state = PlatformState(seed=False)
    before = state.get_settings()
    after = state.update_settings(PatchConvAISettingsRequest(rag_retention_period_days=30))
    assert after.rag_retention_period_days == 30 and after.webhooks == before.webhooks
    bad = msgspec.convert(
        {
            "conversation_initiation_client_data_webhook": {
                "url": "u",
                "request_headers": {"h": {"secret_id": "missing"}},
            }
        },
        PatchConvAISettingsRequest,
    )
    with raises(404, "body.conversation_initiation_client_data_webhook.request_headers.h"):
        state.update_settings(bad)


def test_signed_url_tokens() -> None:
    state = PlatformState()
    tok = state.issue_token("agent_emulator_private", now=100.0)
    assert state.token_valid("agent_emulator_private", tok, 100.0 + 899)
    assert not state.token_valid("agent_emulator_private", tok, 100.0 + 900)
    assert not state.token_valid("agent_emulator_echo", tok, 101.0)
    assert not state.token_valid("agent_emulator_private", "forged", 101.0)
    with raises(404, "query.agent_id"):
        state.issue_token("agent_missing", 0.0)


def test_test_invocations_newest_first_with_cursor() -> None:
    state = PlatformState()
    ids = [state.add_test_invocation("agent_emulator_echo", f"run {i}", passed=i) for i in range(7)]
    state.add_test_invocation("agent_emulator_silent", "other agent")
    page = state.list_test_invocations("agent_emulator_echo", page_size=3)
    got = [r.id for r in page.results]
    assert got == ids[::-1][:3] and page.has_more and page.meta and page.meta.total == 7
    while page.next_cursor:
        page = state.list_test_invocations(
            "agent_emulator_echo", page_size=3, cursor=page.next_cursor
        )
        got += [r.id for r in page.results]
    assert got == ids[::-1]
    assert state.list_test_invocations("agent_emulator_echo").results[0].test_run_count == 6
    with raises(422, "query.page_size"):
        state.list_test_invocations("agent_emulator_echo", page_size=0)


def test_widget_and_avatar() -> None:
    state = PlatformState()
    embed = state.widget("agent_emulator_echo")
    assert embed.widget_config.language == "en" and isinstance(
        embed.widget_config.avatar, OrbAvatar
    )
    assert embed.widget_config.first_message == state.profile("agent_emulator_echo").first_message
    out = state.set_avatar(
        "agent_emulator_echo", "image/png", b"\x89PNG...", "http://h/emulator/avatars/a"
    )
    assert out.avatar_url == "http://h/emulator/avatars/a"
    assert state.widget("agent_emulator_echo").widget_config.avatar == ImageAvatar(
        url=out.avatar_url
    )
    with raises(422, "body.avatar_file"):
        state.set_avatar("agent_emulator_echo", "text/plain", b"hi", "u")
    with raises(422, "body.avatar_file"):
        state.set_avatar("agent_emulator_echo", "image/png", b"", "u")


def test_faults_match_and_run_out() -> None:
    state = PlatformState()
    state.inject_fault(Fault(path_prefix="/v1/convai/agents", status=503, times=2, method="GET"))
    assert state.take_fault("POST", "/v1/convai/agents/create") is None
    assert state.take_fault("GET", "/v1/convai/agents/x") is not None
    assert state.take_fault("GET", "/v1/convai/agents") is not None
    assert state.take_fault("GET", "/v1/convai/agents") is None


def test_persistence_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "emulator.db"
    state = PlatformState(db_path=db)
    aid = agent(state, name="kept", conversation_config={"agent": {"first_message": "hi"}})
    pid = state.create_phone_number(twilio())
    state.update_phone_number(pid, UpdatePhoneNumberRequest(agent_id=aid))
    doomed = state.create_phone_number(twilio("+14155550199"))
    state.delete_phone_number(doomed)
    sid = state.create_secret(CreateSecretRequest(name="k", value="v")).secret_id
    state.update_settings(PatchConvAISettingsRequest(can_use_mcp_servers=True))
    inv = state.add_test_invocation(aid, "t")
    state.close()

    again = PlatformState(db_path=db)
    try:
        assert again.get_agent(aid).name == "kept"
        assert again.profile(aid).first_message == "hi"
        view = again.get_phone_number(pid)
        assert view.assigned_agent is not None and view.assigned_agent.agent_id == aid
        assert doomed not in again.phone_numbers
        assert again.secrets[sid].value == "v"
        assert again.get_settings().can_use_mcp_servers is True
        assert [r.id for r in again.list_test_invocations(aid).results] == [inv]
        assert len([a for a in again.agents if a in SEEDED_AGENTS]) == len(SEEDED_AGENTS)
        later = again.create_phone_number(twilio("+14155550123"))
        again.update_phone_number(pid, UpdatePhoneNumberRequest(label="updated"))
    finally:
        again.close()
    third = PlatformState(db_path=db)
    try:  # an update keeps a document's place: creation order survives
        assert [p.phone_number_id for p in third.list_phone_numbers()] == [pid, later]
        assert third.get_phone_number(pid).label == "updated"
    finally:
        third.close()
