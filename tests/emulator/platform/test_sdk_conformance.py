"""Conformance against code nobody here wrote: the official ``elevenlabs`` SDK, unchanged,
pointed at the emulator with ``base_url``.

REST: the SDK's own calls must succeed, and because the SDK parses responses without
validation, every raw body is also validated strictly against the SDK's pydantic models.
Conversations: ``Conversation`` (threads, sync websockets) and ``AsyncConversation`` hold
real conversations: initiation, audio both ways, ping/pong, interruption, a client tool
call, the agent ending the call.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pydantic
import pytest
from elevenlabs import AsyncElevenLabs, ElevenLabs
from elevenlabs.conversational_ai.phone_numbers.types import (
    PhoneNumbersCreateRequestBody_SipTrunk,
    PhoneNumbersCreateRequestBody_Twilio,
    PhoneNumbersGetResponse,
    PhoneNumbersListResponseItem,
)
from elevenlabs.core.api_error import ApiError
from elevenlabs.errors import UnprocessableEntityError
from elevenlabs.types import (
    AgentConfig,
    AsrConversationalConfig,
    ConversationalConfig,
    ConversationSignedUrlResponseModel,
    CreateAgentResponseModel,
    CreatePhoneNumberResponseModel,
    GetAgentEmbedResponseModel,
    GetAgentResponseModel,
    GetAgentsPageResponseModel,
    GetConvAiSettingsResponseModel,
    GetTestInvocationsPageResponseModel,
    GetWorkspaceSecretsResponseModel,
    OutboundSipTrunkConfigRequestModel,
    PostAgentAvatarResponseModel,
    PostWorkspaceSecretResponseModel,
    TtsConversationalConfigOutput,
)

from bridge.audio.signals import tone_pcm16
from tests.fixtures.platform_emulator import PlatformEmulator

with warnings.catch_warnings():
    # The SDK's class body names websockets' legacy WebSocketClientProtocol, deprecated
    # since websockets 14: a warning at import time, not about anything we do.
    warnings.simplefilter("ignore", DeprecationWarning)
    from elevenlabs.conversational_ai.conversation import (
        AsyncAudioInterface,
        AsyncConversation,
        AudioInterface,
        ClientTools,
        Conversation,
        ConversationInitiationData,
        DisconnectionDetails,
    )

# --------------------------------------------------------------------------- REST


@pytest.fixture
async def sdk(platform_emulator: PlatformEmulator) -> AsyncIterator[AsyncElevenLabs]:
    async with httpx.AsyncClient(timeout=10) as http:  # ours, so it gets closed
        yield AsyncElevenLabs(
            base_url=platform_emulator.http_url,
            api_key=platform_emulator.api_key,
            httpx_client=http,
        )


@pytest.fixture
def sync_sdk(platform_emulator: PlatformEmulator) -> Iterator[ElevenLabs]:
    with httpx.Client(timeout=10) as http:
        yield ElevenLabs(
            base_url=platform_emulator.http_url,
            api_key=platform_emulator.api_key,
            httpx_client=http,
        )


@pytest.fixture
async def raw(platform_emulator: PlatformEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=platform_emulator.http_url, headers={"xi-api-key": platform_emulator.api_key}
    ) as client:
        yield client


async def strict(raw: httpx.AsyncClient, method: str, path: str, model: Any, **kw: Any) -> Any:
    """The raw response validated (for real) against an SDK model or type."""
    r = await raw.request(method, path, **kw)
    assert r.status_code == 200, r.text
    return pydantic.TypeAdapter(model).validate_python(r.json())


async def test_phone_numbers(sdk: AsyncElevenLabs, raw: httpx.AsyncClient) -> None:
    pn = sdk.conversational_ai.phone_numbers
    created = await pn.create(
        request=PhoneNumbersCreateRequestBody_Twilio(
            phone_number="+14155550100", label="main", sid="AC" + "0" * 32, token="tok"
        )
    )
    pid = created.phone_number_id
    sip = await pn.create(
        request=PhoneNumbersCreateRequestBody_SipTrunk(
            phone_number="+14155550101",
            label="trunk",
            outbound_trunk_config=OutboundSipTrunkConfigRequestModel(address="sip.example.com"),
        )
    )
    listed = await pn.list()
    assert [p.phone_number_id for p in listed] == [pid, sip.phone_number_id]
    assert [p.provider for p in listed] == ["twilio", "sip_trunk"]
    await strict(raw, "GET", "/v1/convai/phone-numbers", list[PhoneNumbersListResponseItem])

    updated = await pn.update(pid, agent_id="agent_emulator_echo")
    assert updated.assigned_agent is not None
    assert updated.assigned_agent.agent_name == "Emulator echo"
    got = await pn.get(pid)
    assert got.assigned_agent is not None and got.assigned_agent.agent_id == "agent_emulator_echo"
    await strict(raw, "GET", f"/v1/convai/phone-numbers/{pid}", PhoneNumbersGetResponse)
    await strict(
        raw, "GET", f"/v1/convai/phone-numbers/{sip.phone_number_id}", PhoneNumbersGetResponse
    )
    unassigned = await pn.update(pid, agent_id=None)
    assert unassigned.assigned_agent is None

    await pn.delete(pid)
    with pytest.raises(ApiError) as info:
        await pn.get(pid)
    assert info.value.status_code == 404
    with pytest.raises(UnprocessableEntityError) as bad:
        await pn.create(
            request=PhoneNumbersCreateRequestBody_Twilio(
                phone_number="555-0100", label="x", sid="AC1", token="t"
            )
        )
    assert bad.value.body["detail"][0]["loc"] == ["body", "phone_number"]
    created_raw = await raw.post(
        "/v1/convai/phone-numbers",
        json={"phone_number": "+14155550102", "label": "x", "sid": "AC1", "token": "t"},
    )
    pydantic.TypeAdapter(CreatePhoneNumberResponseModel).validate_python(created_raw.json())


async def test_agents_and_signed_url(sdk: AsyncElevenLabs, raw: httpx.AsyncClient) -> None:
    agents = sdk.conversational_ai.agents
    created = await agents.create(
        name="SDK agent",
        conversation_config=ConversationalConfig(
            asr=AsrConversationalConfig(user_input_audio_format="ulaw_8000"),
            tts=TtsConversationalConfigOutput(agent_output_audio_format="ulaw_8000"),
            agent=AgentConfig(
                first_message="Hi from the SDK", language="en", emulator={"mode": "loopback"}
            ),
        ),
        tags=["sdk"],
    )
    aid = created.agent_id
    got = await agents.get(aid)
    assert got.name == "SDK agent" and got.tags == ["sdk"]
    assert got.conversation_config.asr is not None
    assert got.conversation_config.asr.user_input_audio_format == "ulaw_8000"
    assert got.conversation_config.agent is not None
    assert got.conversation_config.agent.first_message == "Hi from the SDK"
    await strict(raw, "GET", f"/v1/convai/agents/{aid}", GetAgentResponseModel)
    page = await agents.list(page_size=2)
    assert page.agents[0].agent_id == aid and page.has_more
    await strict(
        raw, "GET", "/v1/convai/agents", GetAgentsPageResponseModel, params={"page_size": 2}
    )
    created_raw = await raw.post("/v1/convai/agents/create", json={"conversation_config": {}})
    pydantic.TypeAdapter(CreateAgentResponseModel).validate_python(created_raw.json())

    signed = await sdk.conversational_ai.conversations.get_signed_url(agent_id=aid)
    assert signed.signed_url.startswith("ws://127.0.0.1:") and "token=" in signed.signed_url
    await strict(
        raw,
        "GET",
        "/v1/convai/conversation/get-signed-url",
        ConversationSignedUrlResponseModel,
        params={"agent_id": aid},
    )


async def test_settings_secrets_widget_avatar_invocations(
    sdk: AsyncElevenLabs, raw: httpx.AsyncClient, platform_emulator: PlatformEmulator
) -> None:
    ca = sdk.conversational_ai
    settings = await ca.settings.get()
    assert settings.default_livekit_stack == "standard"
    updated = await ca.settings.update(can_use_mcp_servers=True, rag_retention_period_days=20)
    assert updated.can_use_mcp_servers is True and updated.rag_retention_period_days == 20
    await strict(raw, "GET", "/v1/convai/settings", GetConvAiSettingsResponseModel)

    secret = await ca.secrets.create(name="crm-token", value="s3cret")
    assert secret.name == "crm-token"
    again = await ca.secrets.update(secret.secret_id, name="crm-token-2", value="s3cret2")
    assert again.secret_id == secret.secret_id and again.name == "crm-token-2"
    listed = await ca.secrets.list()
    assert [s.name for s in listed.secrets] == ["crm-token-2"]
    await strict(raw, "GET", "/v1/convai/secrets", GetWorkspaceSecretsResponseModel)
    posted = await raw.post("/v1/convai/secrets", json={"type": "new", "name": "n2", "value": "v"})
    pydantic.TypeAdapter(PostWorkspaceSecretResponseModel).validate_python(posted.json())

    widget = await ca.agents.widget.get("agent_emulator_echo")
    assert widget.widget_config.language == "en"
    await strict(
        raw, "GET", "/v1/convai/agents/agent_emulator_echo/widget", GetAgentEmbedResponseModel
    )
    avatar = await ca.agents.widget.avatar.create(
        "agent_emulator_echo", avatar_file=("me.png", b"\x89PNG\r\n\x1a\n....", "image/png")
    )
    assert avatar.avatar_url and avatar.avatar_url.endswith("/emulator/avatars/agent_emulator_echo")
    reposted = await raw.post(
        "/v1/convai/agents/agent_emulator_echo/avatar",
        files={"avatar_file": ("a.png", b"\x89PNG", "image/png")},
    )
    pydantic.TypeAdapter(PostAgentAvatarResponseModel).validate_python(reposted.json())

    for i in range(3):
        platform_emulator.state.add_test_invocation(
            "agent_emulator_echo", f"suite {i}", passed=2, failed=1
        )
    page = await ca.tests.invocations.list(agent_id="agent_emulator_echo", page_size=2)
    assert [r.title for r in page.results] == ["suite 2", "suite 1"] and page.has_more
    rest = await ca.tests.invocations.list(
        agent_id="agent_emulator_echo", page_size=2, cursor=page.next_cursor
    )
    assert [r.title for r in rest.results] == ["suite 0"] and not rest.has_more
    await strict(
        raw,
        "GET",
        "/v1/convai/test-invocations",
        GetTestInvocationsPageResponseModel,
        params={"agent_id": "agent_emulator_echo"},
    )


async def test_wrong_key_is_a_401_for_the_sdk(platform_emulator: PlatformEmulator) -> None:
    async with httpx.AsyncClient() as http:
        sdk = AsyncElevenLabs(
            base_url=platform_emulator.http_url, api_key="wrong", httpx_client=http
        )
        with pytest.raises(ApiError) as info:
            await sdk.conversational_ai.phone_numbers.list()
    assert info.value.status_code == 401
    assert info.value.body == {
        "detail": {"status": "invalid_api_key", "message": "invalid API key"}
    }


# --------------------------------------------------------------------------- conversations

RATE = 16000
CHUNK = RATE * 2 // 50  # 20 ms of pcm_16000


def caller_audio(silence_s: float, speech_s: float, tail_s: float) -> list[bytes]:
    audio = bytes(int(RATE * silence_s) * 2) + tone_pcm16(300, speech_s, RATE, dbfs=-12)
    audio += bytes(int(RATE * tail_s) * 2)
    return [audio[i : i + CHUNK] for i in range(0, len(audio), CHUNK)]


class CallerAudio(AudioInterface):
    """Plays a list of chunks into the conversation in real time; records what comes back."""

    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks
        self.output_bytes = 0
        self.interrupts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, input_callback: Callable[[bytes], None]) -> None:
        def feed() -> None:
            for chunk in self.chunks:
                if self._stop.wait(0.02):
                    return
                input_callback(chunk)

        self._thread = threading.Thread(target=feed, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def output(self, audio: bytes) -> None:
        self.output_bytes += len(audio)

    def interrupt(self) -> None:
        self.interrupts += 1


async def test_sync_conversation_interruption_tool_call_and_end(
    platform_emulator: PlatformEmulator, sync_sdk: ElevenLabs
) -> None:
    agent_id = platform_emulator.create_agent(
        first_message="configured greeting",
        behaviour={
            "mode": "silent",
            "steps": [
                {"type": "listen"},
                {"type": "tool_call", "tool_name": "lookup_order", "parameters": {"order": "A17"}},
                {"type": "end_call"},
            ],
        },
        client_tools=("lookup_order",),
    )
    tools = ClientTools()
    calls: list[dict[str, Any]] = []

    def lookup_order(params: dict[str, Any]) -> str:
        calls.append(params)
        return "order A17 ships tomorrow"

    tools.register("lookup_order", lookup_order)
    audio = CallerAudio(caller_audio(silence_s=0.3, speech_s=0.5, tail_s=3.0))
    responses: list[str] = []
    transcripts: list[str] = []
    ended: list[DisconnectionDetails] = []
    conversation = Conversation(
        sync_sdk,
        agent_id,
        requires_auth=False,
        audio_interface=audio,
        client_tools=tools,
        config=ConversationInitiationData(
            dynamic_variables={"caller_id": "+14155550100", "attempt": 2},
            conversation_config_override={
                "agent": {
                    "first_message": "A rather long overridden greeting that is still playing"
                }
            },
        ),
        callback_agent_response=responses.append,
        callback_user_transcript=transcripts.append,
        callback_disconnect=ended.append,
    )
    conversation.start_session()
    conversation_id = await asyncio.to_thread(conversation.wait_for_session_end)

    assert conversation_id is not None and conversation_id.startswith("conv_")
    assert ended and ended[0].reason == "agent" and ended[0].close_code == 1000
    assert responses[0] == "A rather long overridden greeting that is still playing"
    assert transcripts and "no speech recognition" in transcripts[0]
    assert audio.output_bytes > 0 and audio.interrupts == 1
    assert calls == [{"tool_call_id": calls[0]["tool_call_id"], "order": "A17"}]
    record = await platform_emulator.fetch_conversation(conversation_id)
    assert record.dynamic_variables == {"caller_id": "+14155550100", "attempt": 2}
    assert record.source_info.get("source") == "python_sdk"
    assert record.interruptions and record.utterances_ms
    assert [(t.result, t.is_error) for t in record.tool_results] == [
        ("order A17 ships tomorrow", False)
    ]
    assert record.pongs, "the SDK answers pings"
    assert record.close_code == 1000 and record.closed_by == "agent"


class AsyncCallerAudio(AsyncAudioInterface):
    def __init__(self, chunks: list[bytes], enough_bytes: int):
        self.chunks = chunks
        self.output_bytes = 0
        self.enough_bytes = enough_bytes
        self.got_enough = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, input_callback: Callable[[bytes], Awaitable[None]]) -> None:
        async def feed() -> None:
            for chunk in self.chunks:
                await asyncio.sleep(0.02)
                await input_callback(chunk)

        self._task = asyncio.create_task(feed())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def output(self, audio: bytes) -> None:
        self.output_bytes += len(audio)
        if self.output_bytes >= self.enough_bytes:
            self.got_enough.set()

    async def interrupt(self) -> None:
        pass


async def test_async_conversation_private_agent_echo(
    platform_emulator: PlatformEmulator, sync_sdk: ElevenLabs
) -> None:
    agent_id = platform_emulator.create_agent(
        behaviour={"mode": "echo", "greeting": False}, private=True
    )
    echo_bytes = RATE * 2 // 2  # 0.5 s of pcm_16000
    audio = AsyncCallerAudio(caller_audio(silence_s=0.1, speech_s=0.5, tail_s=1.5), echo_bytes)
    transcripts: list[str] = []
    responses: list[str] = []
    conversation = AsyncConversation(
        sync_sdk,
        agent_id,
        requires_auth=True,  # signed URL: the agent is private
        audio_interface=audio,
        callback_user_transcript=_append_async(transcripts),
        callback_agent_response=_append_async(responses),
    )
    await conversation.start_session()
    await asyncio.wait_for(audio.got_enough.wait(), 5)
    await conversation.end_session()
    conversation_id = await conversation.wait_for_session_end()
    assert audio.output_bytes >= echo_bytes
    assert transcripts and responses and "playing back 0.50 s" in responses[0]
    assert conversation_id is not None
    record = await platform_emulator.wait_until_ended(conversation_id)
    assert record.closed_by == "client" and record.utterances_ms == [500]


def _append_async(sink: list[str]) -> Callable[[str], Awaitable[None]]:
    async def append(text: str) -> None:
        sink.append(text)

    return append
