"""The conversation WebSocket on both of its paths, and the direct path's flow control.

Every server we run offers the direct socket (``bridge.ws.server``); a plain uvicorn
server does not, and the endpoint falls back to ASGI.  The same conversations must
look the same on both.  A client that stops reading gets everything later, in order,
unless it stays away for :data:`MAX_PENDING_OUTPUTS` messages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Generator
from typing import Any

import msgspec
import pytest
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from bridge.asgi import running_server, uvicorn_config
from bridge.emulator.platform import ConversationTiming, PlatformState, create_platform_app
from bridge.emulator.platform.ws import MAX_PENDING_OUTPUTS
from bridge.platform.agents import CreateAgentRequest
from bridge.ws.server import DirectWebSocketProtocol

# Pings far apart: a client that is not reading would otherwise miss its pongs.
TIMING = ConversationTiming(ping_interval_s=60.0, pong_timeout_s=60.0, init_wait_s=0.2)
INIT = '{"type":"conversation_initiation_client_data"}'


class _PlainServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def plain_uvicorn(state: PlatformState) -> AsyncIterator[str]:
    """The emulator on uvicorn's own sans-I/O protocol (no direct socket); its ws URL."""
    config = uvicorn_config(create_platform_app(state, api_key="k", timing=TIMING), "127.0.0.1", 0)
    config.ws = "websockets-sansio"
    server = _PlainServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(params=["direct", "asgi"])
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, PlatformState]]:
    state = PlatformState()
    try:
        if request.param == "direct":
            app = create_platform_app(state, api_key="k", timing=TIMING)
            async with running_server(app) as server:
                yield server.ws_url, state
        else:
            async with plain_uvicorn(state) as url:
                yield url, state
    finally:
        state.close()


def _agent(behaviour: dict[str, Any]) -> CreateAgentRequest:
    return msgspec.convert(
        {
            "name": "paths",
            "conversation_config": {
                "asr": {"user_input_audio_format": "pcm_16000"},
                "tts": {"agent_output_audio_format": "pcm_16000"},
                "agent": {"first_message": "", "emulator": behaviour},
            },
        },
        CreateAgentRequest,
    )


def chunk_frame(pcm: bytes) -> str:
    return json.dumps({"user_audio_chunk": base64.b64encode(pcm).decode()})


async def recv_json(ws: ClientConnection, wait_s: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), wait_s))  # type: ignore[no-any-return]


async def wait_ended(state: PlatformState, wait_s: float = 5.0) -> None:
    async with asyncio.timeout(wait_s):
        while True:
            if not any(e.active for e in state.conversations.values()):
                return
            await asyncio.sleep(0.01)


async def test_loopback_then_client_close(emulator: tuple[str, PlatformState]) -> None:
    url, state = emulator
    async with websockets.connect(
        f"{url}/v1/convai/conversation?agent_id=agent_emulator_loopback"
    ) as ws:
        await ws.send(INIT)
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
        for i in range(10):
            pcm = bytes([i + 1, 0]) * 320
            await ws.send(chunk_frame(pcm))
            msg = await recv_json(ws)
            assert msg["type"] == "audio" and msg["audio_event"]["event_id"] == i + 1
            assert base64.b64decode(msg["audio_event"]["audio_base_64"]) == pcm
        await ws.close(1000, "bye")
    await wait_ended(state)
    (entry,) = state.conversations.values()
    r = entry.record
    assert (r.closed_by, r.close_code, r.close_reason) == ("client", 1000, "bye")
    assert r.audio_chunks == r.audio_events_sent == 10 and r.ended_at_unix is not None


async def test_dropped_connection_is_recorded_alike(emulator: tuple[str, PlatformState]) -> None:
    url, state = emulator
    ws = await websockets.connect(f"{url}/v1/convai/conversation?agent_id=agent_emulator_silent")
    await ws.send(INIT)
    await recv_json(ws)
    assert ws.transport is not None
    ws.transport.abort()  # no close frame
    await wait_ended(state)
    (entry,) = state.conversations.values()
    assert (entry.record.closed_by, entry.record.close_code) == ("client", 1005)


async def test_timer_driven_script_and_agent_close(emulator: tuple[str, PlatformState]) -> None:
    url, state = emulator
    agent_id = state.create_agent(
        _agent({"mode": "silent", "steps": [{"type": "wait", "ms": 30}, {"type": "end_call"}]})
    )
    async with websockets.connect(f"{url}/v1/convai/conversation?agent_id={agent_id}") as ws:
        # No client data: the init wait starts the conversation (the timer's first job).
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
        assert (await recv_json(ws))["type"] == "agent_tool_response"
        with pytest.raises(websockets.ConnectionClosedOK):
            await recv_json(ws)
        assert ws.close_code == 1000 and ws.close_reason == "end_call"
    await wait_ended(state)
    (entry,) = state.conversations.values()
    assert entry.record.closed_by == "agent" and entry.record.close_code == 1000
    assert not entry.record.client_data_received


# ------------------------------------------------------------------ flow control (direct)


def _server_socket(server: Any) -> DirectWebSocketProtocol:
    (sock,) = [c for c in server.server_state.connections if isinstance(c, DirectWebSocketProtocol)]
    return sock


async def _fill_until_blocked(ws: ClientConnection, sock: DirectWebSocketProtocol) -> int:
    """Send big chunks while not reading until the emulator's socket stops taking writes."""
    big = bytes(range(256)) * 250  # 64000 bytes: 2 s of pcm_16000
    sent = 0
    while sock.can_send:
        assert sent < 2000, "the socket never filled up"
        await ws.send(chunk_frame(big))
        sent += 1
        await asyncio.sleep(0.001)
    return sent


@contextlib.asynccontextmanager
async def _stalling_loopback_call() -> AsyncIterator[
    tuple[PlatformState, ClientConnection, DirectWebSocketProtocol]
]:
    """A started loopback conversation whose client reads only when the test does."""
    state = PlatformState()
    app = create_platform_app(state, api_key="k", timing=TIMING)
    async with (
        running_server(app) as server,
        websockets.connect(
            f"{server.ws_url}/v1/convai/conversation?agent_id=agent_emulator_loopback",
            max_queue=1,  # pauses reading at once when the test does not read
            compression=None,  # the emulator's buffers must fill, not deflate
        ) as ws,
    ):
        await ws.send(INIT)
        await recv_json(ws)
        yield state, ws, _server_socket(server.server)


async def test_slow_reader_gets_everything_in_order() -> None:
    async with _stalling_loopback_call() as (state, ws, sock):
        sent = await _fill_until_blocked(ws, sock)
        for i in range(20):  # answered while the socket is full: held, not dropped
            await ws.send(chunk_frame(bytes([i, 0]) * 10))
        ids: list[int] = []
        tail: list[bytes] = []
        while len(ids) < sent + 20:
            msg = await recv_json(ws)
            assert msg["type"] == "audio"
            ids.append(msg["audio_event"]["event_id"])
            if len(ids) > sent:
                tail.append(base64.b64decode(msg["audio_event"]["audio_base_64"]))
        assert ids == list(range(1, sent + 21))
        assert tail == [bytes([i, 0]) * 10 for i in range(20)]
    (entry,) = state.conversations.values()
    assert entry.record.audio_events_sent == sent + 20
    state.close()


async def test_reader_that_never_comes_back_is_closed() -> None:
    async with _stalling_loopback_call() as (state, ws, sock):
        await _fill_until_blocked(ws, sock)
        tiny = chunk_frame(b"\x01\x00")
        for _ in range(MAX_PENDING_OUTPUTS + 1):
            await ws.send(tiny)
        await wait_ended(state)
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await recv_json(ws)
        assert ws.close_code == 1008 and "not reading" in (ws.close_reason or "")
    (entry,) = state.conversations.values()
    assert entry.record.closed_by == "agent" and entry.record.close_code == 1008
    assert any("not reading" in n for n in entry.record.notes)
    state.close()
