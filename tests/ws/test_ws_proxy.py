"""The agent socket through an HTTP proxy named by the environment (CONNECT tunnel).

The proxy is a real one on loopback, a few lines over asyncio streams: it reads the
CONNECT request, answers, and pipes bytes both ways, recording what it was asked.  The
WebSocket server behind it is our own (``ws://``) or a TLS one (``wss://``, TLS inside
the tunnel, end to end with the server).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import trustme
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidProxyStatus

from bridge.convai.client import AgentConnector
from bridge.errors import PlatformApiError
from bridge.ws.client import open_socket
from tests.ws.peers import WAIT_S, Recorder, wait_until


class ConnectProxy:
    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.requests: list[str] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line = head.split("\r\n", 1)[0]
        self.requests.append(request_line)
        if self.refuse:
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        host, port = request_line.split()[1].rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    dst.close()


@contextlib.asynccontextmanager
async def running_proxy(refuse: bool = False) -> AsyncIterator[ConnectProxy]:
    proxy = ConnectProxy(refuse=refuse)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    async with server:
        yield proxy


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(f"echo:{message}")


@pytest_asyncio.fixture
async def echo_port() -> AsyncIterator[int]:
    async with serve(_echo, "127.0.0.1", 0, compression=None) as server:
        yield server.sockets[0].getsockname()[1]


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "ws_proxy", "wss_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


async def _round_trip(url: str, **kw: object) -> list[str | bytes]:
    sock = await open_socket(url, open_timeout_s=WAIT_S, **kw)  # type: ignore[arg-type]
    rec = Recorder()
    sock.attach(rec)
    sock.send_texts(["hello"])
    await wait_until(lambda: bool(rec.messages), rec.changed)
    sock.close()
    await asyncio.wait_for(sock.wait_closed(), WAIT_S)
    return rec.messages


async def test_ws_through_the_environments_proxy(
    no_proxy_env: pytest.MonkeyPatch, echo_port: int
) -> None:
    async with running_proxy() as proxy:
        no_proxy_env.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        assert await _round_trip(f"ws://127.0.0.1:{echo_port}/", use_proxy=True) == ["echo:hello"]
    assert proxy.requests == [f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1"]


async def test_proxy_is_only_used_when_asked_and_not_for_no_proxy_hosts(
    no_proxy_env: pytest.MonkeyPatch, echo_port: int
) -> None:
    async with running_proxy() as proxy:
        no_proxy_env.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        await _round_trip(f"ws://127.0.0.1:{echo_port}/")  # use_proxy defaults to False
        no_proxy_env.setenv("no_proxy", "127.0.0.1")
        await _round_trip(f"ws://127.0.0.1:{echo_port}/", use_proxy=True)
    assert proxy.requests == []


async def test_wss_tls_runs_end_to_end_inside_the_tunnel(no_proxy_env: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with (
        serve(_echo, "127.0.0.1", 0, ssl=server_ctx) as server,
        running_proxy() as proxy,
    ):
        port = server.sockets[0].getsockname()[1]
        no_proxy_env.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
        messages = await _round_trip(
            f"wss://127.0.0.1:{port}/", use_proxy=True, ssl_context=client_ctx
        )
    assert messages == ["echo:hello"]
    assert proxy.requests == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"]


async def test_a_refusing_proxy_fails_the_open_and_the_connector_says_so(
    no_proxy_env: pytest.MonkeyPatch, echo_port: int
) -> None:
    async with running_proxy(refuse=True) as proxy:
        no_proxy_env.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        with pytest.raises(InvalidProxyStatus):
            await open_socket(f"ws://127.0.0.1:{echo_port}/", use_proxy=True)
        connector = AgentConnector(f"ws://127.0.0.1:{echo_port}", open_timeout_s=WAIT_S)
        with pytest.raises(PlatformApiError, match="failed to open: InvalidProxyStatus"):
            await connector.connect("agent_x")
    assert len(proxy.requests) == 2


async def test_socks_proxies_are_refused_clearly(no_proxy_env: pytest.MonkeyPatch) -> None:
    no_proxy_env.setenv("https_proxy", "socks5h://127.0.0.1:9")
    connector = AgentConnector("ws://127.0.0.1:9", open_timeout_s=WAIT_S)
    with pytest.raises(PlatformApiError, match="failed to open: ProxyError"):
        await connector.connect("agent_x")
