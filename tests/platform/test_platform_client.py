"""PlatformClient against the emulator over loopback: every endpoint, errors, retries."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import msgspec
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.asgi import running_server
from bridge.emulator.platform import Fault
from bridge.errors import PlatformApiError
from bridge.platform.agents import CreateAgentRequest
from bridge.platform.client import PlatformClient
from bridge.platform.phone_numbers import (
    CreateSipTrunkPhoneNumberRequest,
    CreateTwilioPhoneNumberRequest,
    OutboundSipTrunkConfigRequest,
    SipTrunkPhoneNumber,
    TwilioPhoneNumber,
    UpdatePhoneNumberRequest,
)
from bridge.platform.workspace import PatchConvAISettingsRequest
from tests.fixtures.platform_emulator import PlatformEmulator


@pytest.fixture
async def client(platform_emulator: PlatformEmulator) -> AsyncIterator[PlatformClient]:
    async with PlatformClient(
        platform_emulator.http_url, platform_emulator.api_key, max_retries=2, backoff_s=0.001
    ) as c:
        yield c


def twilio(number: str = "+14155550100") -> CreateTwilioPhoneNumberRequest:
    return CreateTwilioPhoneNumberRequest(phone_number=number, label="main", sid="AC1", token="t")


async def test_phone_numbers_round_trip(client: PlatformClient) -> None:
    pid = await client.create_phone_number(twilio())
    sip_id = await client.create_phone_number(
        CreateSipTrunkPhoneNumberRequest(
            phone_number="+14155550101",
            label="trunk",
            outbound_trunk_config=OutboundSipTrunkConfigRequest(
                address="sip.example.com", transport="tcp"
            ),
        )
    )
    numbers = await client.list_phone_numbers()
    assert [type(n) for n in numbers] == [TwilioPhoneNumber, SipTrunkPhoneNumber]
    assigned = await client.assign_agent(pid, "agent_emulator_echo")
    assert (
        assigned.assigned_agent is not None
        and assigned.assigned_agent.agent_name == "Emulator echo"
    )
    sip = await client.update_phone_number(sip_id, UpdatePhoneNumberRequest(livekit_stack="static"))
    assert isinstance(sip, SipTrunkPhoneNumber) and sip.livekit_stack == "static"
    assert sip.outbound_trunk is not None and sip.outbound_trunk.transport == "tcp"
    assert (await client.assign_agent(pid, None)).assigned_agent is None
    await client.delete_phone_number(pid)
    assert [n.phone_number_id for n in await client.list_phone_numbers()] == [sip_id]


async def test_agents_pages_and_signed_url(
    client: PlatformClient, platform_emulator: PlatformEmulator
) -> None:
    request = msgspec.convert(
        {
            "name": "mine",
            "conversation_config": {"tts": {"agent_output_audio_format": "ulaw_8000"}},
        },
        CreateAgentRequest,
    )
    agent_id = await client.create_agent(request)
    agent = await client.get_agent(agent_id)
    assert agent.name == "mine"
    assert (
        agent.conversation_config.tts
        and agent.conversation_config.tts.agent_output_audio_format == "ulaw_8000"
    )
    every = [a.agent_id async for a in client.iter_agents(page_size=2)]
    assert every[0] == agent_id and len(every) == len(platform_emulator.state.agents)
    url = await client.get_signed_url(agent_id)
    assert url.startswith(platform_emulator.ws_url) and "token=" in url


async def test_workspace_widget_avatar_invocations(
    client: PlatformClient, platform_emulator: PlatformEmulator
) -> None:
    settings = await client.update_settings(
        PatchConvAISettingsRequest(default_livekit_stack="static")
    )
    assert settings.default_livekit_stack == "static"
    assert (await client.get_settings()).default_livekit_stack == "static"
    created = await client.create_secret("api", "v1")
    await client.update_secret(created.secret_id, "api2", "v2")
    assert [s.name for s in await client.list_secrets()] == ["api2"]
    embed = await client.get_widget("agent_emulator_echo")
    assert embed.agent_id == "agent_emulator_echo"
    avatar = await client.create_avatar("agent_emulator_echo", b"\x89PNG\r\n\x1a\n")
    assert avatar.avatar_url is not None
    for i in range(5):
        platform_emulator.state.add_test_invocation("agent_emulator_echo", f"run {i}")
    titles = [
        t.title async for t in client.iter_test_invocations("agent_emulator_echo", page_size=2)
    ]
    assert titles == [f"run {i}" for i in range(4, -1, -1)]


async def test_errors_carry_status_code_message_and_request_id(client: PlatformClient) -> None:
    with pytest.raises(PlatformApiError) as info:
        await client.get_phone_number("phnum_missing")
    e = info.value
    assert e.status == 404 and e.code == "phone_number_not_found"
    assert "phnum_missing" in e.message and e.request_id and e.request_id.startswith("req_")
    assert e.detail == {"status": "phone_number_not_found", "message": e.message.split(": ", 1)[1]}


async def test_validation_detail_is_kept_verbatim(client: PlatformClient) -> None:
    with pytest.raises(PlatformApiError) as info:
        await client.create_phone_number(twilio("0800 123"))
    e = info.value
    assert e.status == 422 and isinstance(e.detail, list)
    (item,) = e.detail
    assert item["loc"] == ["body", "phone_number"] and item["type"] == "value_error"
    assert f"body.phone_number: {item['msg']}" in str(e)


async def test_wrong_key(platform_emulator: PlatformEmulator) -> None:
    async with PlatformClient(platform_emulator.http_url, "nope") as c:
        with pytest.raises(PlatformApiError) as info:
            await c.list_phone_numbers()
    assert info.value.status == 401 and info.value.code == "invalid_api_key"


async def test_idempotent_calls_are_retried(
    client: PlatformClient, platform_emulator: PlatformEmulator
) -> None:
    state = platform_emulator.state
    state.inject_fault(Fault(path_prefix="/v1/convai/settings", status=503, times=1))
    state.inject_fault(
        Fault(path_prefix="/v1/convai/settings", status=429, times=1, retry_after_s=0.01)
    )
    assert (await client.get_settings()).default_livekit_stack == "standard"  # third attempt
    assert state.faults == []
    state.inject_fault(
        Fault(path_prefix="/v1/convai/phone-numbers/", status=502, times=1, method="DELETE")
    )
    pid = await client.create_phone_number(twilio())
    await client.delete_phone_number(pid)
    assert state.faults == [] and pid not in state.phone_numbers


async def test_retries_give_up_after_max_retries(
    client: PlatformClient, platform_emulator: PlatformEmulator
) -> None:
    platform_emulator.state.inject_fault(
        Fault(path_prefix="/v1/convai/agents", status=500, times=5)
    )
    with pytest.raises(PlatformApiError) as info:
        await client.list_agents()
    assert info.value.status == 500 and info.value.code == "injected_fault"
    assert platform_emulator.state.faults[0].times == 2  # 1 try + 2 retries used 3 of 5


async def test_posts_and_patches_are_not_retried(
    client: PlatformClient, platform_emulator: PlatformEmulator
) -> None:
    state = platform_emulator.state
    state.inject_fault(
        Fault(path_prefix="/v1/convai/phone-numbers", status=503, times=2, method="POST")
    )
    with pytest.raises(PlatformApiError) as info:
        await client.create_phone_number(twilio())
    assert info.value.status == 503 and state.faults[0].times == 1
    assert state.phone_numbers == {}
    state.faults.clear()
    state.inject_fault(
        Fault(path_prefix="/v1/convai/settings", status=503, times=2, method="PATCH")
    )
    with pytest.raises(PlatformApiError):
        await client.update_settings(PatchConvAISettingsRequest(can_use_mcp_servers=True))
    assert state.faults[0].times == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_is_a_platform_error() -> None:
    async with PlatformClient(
        f"http://127.0.0.1:{_closed_port()}", "k", max_retries=1, backoff_s=0.001
    ) as c:
        with pytest.raises(PlatformApiError) as info:
            await c.get_settings()
    assert info.value.status is None and "ConnectError" in str(info.value)


async def test_a_server_that_never_answers_times_out() -> None:
    held: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with PlatformClient(
            f"http://127.0.0.1:{port}", "k", timeout_s=0.2, max_retries=0
        ) as c:
            with pytest.raises(PlatformApiError) as info:
                await c.get_settings()
        assert "timed out" in str(info.value) and info.value.status is None
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


async def test_unexpected_response_body() -> None:
    async def weird(request: object) -> JSONResponse:
        return JSONResponse({"not": "a signed url"})

    app = Starlette(routes=[Route("/v1/convai/conversation/get-signed-url", weird)])
    async with running_server(app) as server, PlatformClient(server.http_url, "k") as c:
        with pytest.raises(PlatformApiError) as info:
            await c.get_signed_url("a")
    assert info.value.status == 200 and "unexpected response body" in str(info.value)
