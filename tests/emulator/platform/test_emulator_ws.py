"""The conversation WebSocket over loopback, with the `websockets` client."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from bridge.asgi import running_server
from bridge.audio.signals import from_pcm16, tone_pcm16, tone_snr_db
from bridge.emulator.platform import ConversationTiming, PlatformState, create_platform_app
from tests.fixtures.platform_emulator import PlatformEmulator

INIT = json.dumps(
    {
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"caller_id": "+14155550100"},
    }
)


async def recv_json(ws: ClientConnection, wait_s: float = 3.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), wait_s))  # type: ignore[no-any-return]


async def until(
    ws: ClientConnection, kind: str, *, answer_pings: bool = True, wait_s: float = 5.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read frames until one of ``kind``; returns it and everything before it."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(wait_s):
        while True:
            msg = await recv_json(ws, wait_s)
            if msg["type"] == kind:
                return msg, seen
            if msg["type"] == "ping" and answer_pings:
                await ws.send(
                    json.dumps({"type": "pong", "event_id": msg["ping_event"]["event_id"]})
                )
            seen.append(msg)


async def closed_with(ws: ClientConnection, wait_s: float = 5.0) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed) as info:
        async with asyncio.timeout(wait_s):
            while True:
                await ws.recv()
    rcvd = info.value.rcvd
    assert rcvd is not None
    return rcvd.code, rcvd.reason


@pytest.fixture
async def echo_ws(platform_emulator: PlatformEmulator) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(platform_emulator.conversation_url("agent_emulator_echo")) as ws:
        yield ws


async def test_start_greeting_and_inspection(platform_emulator: PlatformEmulator) -> None:
    async with websockets.connect(platform_emulator.conversation_url("agent_emulator_echo")) as ws:
        await ws.send(INIT)
        meta = await recv_json(ws)
        assert meta["type"] == "conversation_initiation_metadata"
        event = meta["conversation_initiation_metadata_event"]
        assert event["user_input_audio_format"] == event["agent_output_audio_format"] == "pcm_16000"
        conv_id = event["conversation_id"]
        response = await recv_json(ws)
        assert response["type"] == "agent_response"
        audio = await recv_json(ws)
        assert audio["type"] == "audio" and audio["audio_event"]["event_id"] == 1
        await ws.send(json.dumps({"type": "contextual_update", "text": "caller is on page 2"}))
        await ws.send(json.dumps({"type": "user_activity"}))
        await until(ws, "ping")
    record = await platform_emulator.wait_until_ended(conv_id)
    assert record.closed_by == "client"
    fetched = await platform_emulator.fetch_conversation(conv_id)
    assert fetched.dynamic_variables == {"caller_id": "+14155550100"}
    assert fetched.contextual_updates == ["caller is on page 2"] and fetched.user_activity == 1
    async with httpx.AsyncClient(base_url=platform_emulator.http_url) as http:
        listed = (
            await http.get(
                "/emulator/conversations",
                params={"agent_id": "agent_emulator_echo"},
                headers={"xi-api-key": platform_emulator.api_key},
            )
        ).json()
    assert [c["conversation_id"] for c in listed] == [conv_id]


async def test_pings_are_answered_and_measured(
    platform_emulator: PlatformEmulator, echo_ws: ClientConnection
) -> None:
    await echo_ws.send(INIT)
    meta = await recv_json(echo_ws)
    conv_id = meta["conversation_initiation_metadata_event"]["conversation_id"]
    first, _ = await until(echo_ws, "ping")
    assert first["ping_event"] == {"event_id": 1, "ping_ms": 0}
    await echo_ws.send(json.dumps({"type": "pong", "event_id": 1}))
    second, _ = await until(echo_ws, "ping")
    record = platform_emulator.state.conversation(conv_id).record
    assert record.pongs == [1] and record.last_rtt_ms is not None
    assert second["ping_event"] == {"event_id": 2, "ping_ms": record.last_rtt_ms}


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "missing agent_id"),
        ("?agent_id=agent_nobody", "not found"),
        ("?agent_id=agent_emulator_private", "signed URL"),
        ("?agent_id=agent_emulator_private&token=forged", "invalid or expired"),
        ("?agent_id=" + "x" * 300, "agent 'xxx"),  # the reason is cut to fit a close frame
    ],
)
async def test_refused_connections_close_1008(
    platform_emulator: PlatformEmulator, query: str, reason: str
) -> None:
    async with websockets.connect(
        f"{platform_emulator.ws_url}/v1/convai/conversation{query}"
    ) as ws:
        code, text = await closed_with(ws)
    assert code == 1008 and reason in text
    assert platform_emulator.conversations() == []


async def test_private_agent_with_signed_url_or_api_key(
    platform_emulator: PlatformEmulator,
) -> None:
    async with platform_emulator.client() as client:
        url = await client.get_signed_url("agent_emulator_private")
    async with websockets.connect(url) as ws:
        await ws.send(INIT)
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
    async with websockets.connect(
        platform_emulator.conversation_url("agent_emulator_private"),
        additional_headers={"xi-api-key": platform_emulator.api_key},
    ) as ws:
        await ws.send(INIT)
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"user_audio_chunk": "%%%"}', 1007),
        ('{"user_audio_chunk": "AAEC"}', 1007),
        (b"\x00\x01", 1003),
    ],
)
async def test_bad_frames_close_the_socket(
    echo_ws: ClientConnection, frame: str | bytes, code: int
) -> None:
    await echo_ws.send(INIT)
    await recv_json(echo_ws)
    await echo_ws.send(frame)
    got, _ = await closed_with(echo_ws)
    assert got == code


async def test_echo_round_trip_keeps_the_tone(platform_emulator: PlatformEmulator) -> None:
    agent_id = platform_emulator.create_agent(
        behaviour={"mode": "echo", "greeting": False}, output_format="pcm_24000"
    )
    speech = tone_pcm16(440, 0.5, 16000, dbfs=-12) + bytes(16000 * 2 * 6 // 10)
    async with websockets.connect(platform_emulator.conversation_url(agent_id)) as ws:
        await ws.send(INIT)
        await recv_json(ws)
        for off in range(0, len(speech), 640):  # 20 ms chunks, as fast as the socket takes them
            await ws.send(
                json.dumps({"user_audio_chunk": base64.b64encode(speech[off : off + 640]).decode()})
            )
        transcript, _ = await until(ws, "user_transcript")
        assert "0.50 s" in transcript["user_transcription_event"]["user_transcript"]
        echoed = b""
        while len(echoed) < 24000:  # 0.5 s of pcm_24000
            msg, _ = await until(ws, "audio")
            echoed += base64.b64decode(msg["audio_event"]["audio_base_64"])
    samples = from_pcm16(echoed)[1200:10800]  # skip the edges of the utterance
    assert tone_snr_db(samples, 24000, 440) > 30


async def test_barge_in_over_the_socket(platform_emulator: PlatformEmulator) -> None:
    agent_id = platform_emulator.create_agent(
        behaviour={"mode": "silent"}, first_message="a long greeting " * 5
    )
    async with websockets.connect(platform_emulator.conversation_url(agent_id)) as ws:
        await ws.send(INIT)
        await recv_json(ws)
        first_audio, _ = await until(ws, "audio")
        speech = tone_pcm16(300, 0.2, 16000, dbfs=-12)
        for off in range(0, len(speech), 640):
            await ws.send(
                json.dumps({"user_audio_chunk": base64.b64encode(speech[off : off + 640]).decode()})
            )
        interruption, before = await until(ws, "interruption")
        ids = [first_audio["audio_event"]["event_id"]] + [
            m["audio_event"]["event_id"] for m in before if m["type"] == "audio"
        ]
        assert interruption["interruption_event"]["event_id"] == max(ids)


async def test_script_tool_call_then_end_call(platform_emulator: PlatformEmulator) -> None:
    agent_id = platform_emulator.create_agent(
        behaviour={
            "mode": "silent",
            "steps": [
                {"type": "tool_call", "tool_name": "send_dtmf", "parameters": {"digits": "12#"}},
                {"type": "end_call"},
            ],
        }
    )
    async with websockets.connect(platform_emulator.conversation_url(agent_id)) as ws:
        await ws.send(INIT)
        meta = await recv_json(ws)
        call, _ = await until(ws, "client_tool_call")
        body = call["client_tool_call"]
        assert body["tool_name"] == "send_dtmf" and body["parameters"] == {"digits": "12#"}
        await ws.send(
            json.dumps(
                {
                    "type": "client_tool_result",
                    "tool_call_id": body["tool_call_id"],
                    "result": "sent",
                    "is_error": False,
                }
            )
        )
        tool, _ = await until(ws, "agent_tool_response")
        assert tool["agent_tool_response"]["tool_name"] == "end_call"
        code, reason = await closed_with(ws)
    assert (code, reason) == (1000, "end_call")
    record = await platform_emulator.wait_until_ended(
        meta["conversation_initiation_metadata_event"]["conversation_id"]
    )
    assert [(r.tool_call_id, r.result) for r in record.tool_results] == [
        (body["tool_call_id"], "sent")
    ]
    assert record.closed_by == "agent"


async def test_scripted_abnormal_close(platform_emulator: PlatformEmulator) -> None:
    agent_id = platform_emulator.create_agent(
        behaviour={"steps": [{"type": "wait", "ms": 50}, {"type": "close"}]}
    )
    async with websockets.connect(platform_emulator.conversation_url(agent_id)) as ws:
        await ws.send(INIT)
        code, reason = await closed_with(ws)
    assert (code, reason) == (1011, "scripted abnormal close")


async def test_loopback_answers_each_chunk(platform_emulator: PlatformEmulator) -> None:
    async with websockets.connect(
        platform_emulator.conversation_url("agent_emulator_loopback_ulaw")
    ) as ws:
        await ws.send(INIT)
        await recv_json(ws)
        for i in range(5):
            payload = bytes([0x10 + i]) * 160
            await ws.send(json.dumps({"user_audio_chunk": base64.b64encode(payload).decode()}))
            msg, _ = await until(ws, "audio")
            assert base64.b64decode(msg["audio_event"]["audio_base_64"]) == payload
            assert msg["audio_event"]["event_id"] == i + 1


async def test_captured_audio_is_served(platform_emulator: PlatformEmulator) -> None:
    agent_id = platform_emulator.create_agent(
        behaviour={"mode": "silent", "capture_audio": True}, input_format="ulaw_8000"
    )
    sent = bytes(range(256)) * 4
    async with websockets.connect(platform_emulator.conversation_url(agent_id)) as ws:
        await ws.send(INIT)
        meta = await recv_json(ws)
        for off in range(0, len(sent), 160):
            await ws.send(
                json.dumps({"user_audio_chunk": base64.b64encode(sent[off : off + 160]).decode()})
            )
    conv_id = meta["conversation_initiation_metadata_event"]["conversation_id"]
    record = await platform_emulator.wait_until_ended(conv_id)
    assert record.audio_bytes == {"ulaw_8000": len(sent)}
    async with httpx.AsyncClient(
        base_url=platform_emulator.http_url, headers={"xi-api-key": platform_emulator.api_key}
    ) as http:
        r = await http.get(f"/emulator/conversations/{conv_id}/audio")
        assert r.content == sent and r.headers["x-audio-format"] == "ulaw_8000"
        plain = platform_emulator.conversations("agent_emulator_echo")
        assert plain == []


async def test_stalled_agent_sends_nothing(platform_emulator: PlatformEmulator) -> None:
    agent_id = platform_emulator.create_agent(behaviour={"steps": [{"type": "stall"}]})
    async with websockets.connect(platform_emulator.conversation_url(agent_id)) as ws:
        await ws.send(INIT)
        await recv_json(ws)
        with pytest.raises(TimeoutError):  # two ping intervals of nothing at all
            await recv_json(ws, wait_s=2 * platform_emulator.timing.ping_interval_s + 0.2)


async def test_unanswered_pings_close_1011() -> None:
    timing = ConversationTiming(ping_interval_s=0.05, pong_timeout_s=0.2, init_wait_s=0.05)
    state = PlatformState()
    app = create_platform_app(state, api_key="k", timing=timing)
    async with (
        running_server(app) as server,
        websockets.connect(
            f"{server.ws_url}/v1/convai/conversation?agent_id=agent_emulator_silent"
        ) as ws,
    ):
        code, reason = await closed_with(ws)
    assert code == 1011 and "no pong" in reason
    (entry,) = state.conversations.values()
    assert entry.record.pings_sent >= 2 and entry.record.pongs == []


async def test_many_concurrent_conversations_end_cleanly(
    platform_emulator: PlatformEmulator,
) -> None:
    async def one() -> str:
        async with websockets.connect(
            platform_emulator.conversation_url("agent_emulator_loopback")
        ) as ws:
            await ws.send(INIT)
            meta = await recv_json(ws)
            await ws.send(json.dumps({"user_audio_chunk": base64.b64encode(bytes(640)).decode()}))
            await until(ws, "audio")
            return str(meta["conversation_initiation_metadata_event"]["conversation_id"])

    ids = await asyncio.gather(*(one() for _ in range(20)))
    assert len(set(ids)) == 20
    for conv_id in ids:
        record = await platform_emulator.wait_until_ended(conv_id)
        assert record.closed_by == "client" and record.audio_chunks == 1
