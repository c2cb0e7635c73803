"""AgentConnector: URLs, and every failure to open becomes one PlatformApiError."""

from __future__ import annotations

import asyncio
import socket

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from bridge.asgi import running_server
from bridge.convai.client import AgentConnector
from bridge.errors import PlatformApiError
from tests.fixtures.platform_emulator import PlatformEmulator


def test_public_url_quotes_the_agent_id() -> None:
    c = AgentConnector("wss://api.example.com/")
    assert c.public_url("agent 1&x") == (
        "wss://api.example.com/v1/convai/conversation?agent_id=agent%201%26x"
    )
    assert not c.uses_signed_urls


async def test_nothing_listening_is_a_platform_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PlatformApiError, match="failed to open"):
        await AgentConnector(f"ws://127.0.0.1:{port}").connect("agent_x")


async def test_refused_upgrade_keeps_the_http_status() -> None:
    async def refuse(ws: WebSocket) -> None:
        await ws.close(1008)  # before accept: the upgrade gets HTTP 403

    app = Starlette(routes=[WebSocketRoute("/v1/convai/conversation", refuse)])
    async with running_server(app) as server:
        with pytest.raises(PlatformApiError) as err:
            await AgentConnector(server.ws_url).connect("agent_x")
    assert err.value.status == 403


async def test_slow_signed_url_times_out() -> None:
    async def never(agent_id: str) -> str:
        await asyncio.sleep(60)
        return "wss://unused"

    c = AgentConnector("ws://127.0.0.1:9", signed_url=never, open_timeout_s=0.05)
    with pytest.raises(PlatformApiError, match="timed out"):
        await c.connect("agent_x")


async def test_signed_url_is_used_when_configured(platform_emulator: PlatformEmulator) -> None:
    private = platform_emulator.create_agent(private=True)
    async with platform_emulator.client() as rest:
        c = AgentConnector(platform_emulator.ws_url, signed_url=rest.get_signed_url)
        ws = await c.connect(private)
        sink = _Collect()
        ws.attach(sink)
        # The emulator refuses a private agent without a valid token by closing 1008;
        # with the signed URL the conversation starts.
        await asyncio.wait_for(sink.first.wait(), 5)
        ws.close()
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert sink.texts and '"conversation_initiation_metadata"' in sink.texts[0]
    assert sink.closed == (1000, "")
    assert c.uses_signed_urls


class _Collect:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.first = asyncio.Event()

    def on_text(self, text: str) -> None:
        self.texts.append(text)
        self.first.set()

    def on_binary(self, data: bytes) -> None:
        self.first.set()

    def on_writable(self) -> None:
        pass

    def on_closed(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self.first.set()
