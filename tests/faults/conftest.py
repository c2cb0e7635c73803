"""Peers that misbehave, on real loopback sockets, and a bridge to point at them.

* :func:`closed_port`: a port nothing listens on (connect → refused);
* :func:`silent_server`: a socket that accepts and never says a word (connect → hangs);
* :func:`status_server`: an HTTP server answering every request with one status;
* :func:`fault_bridge`: the bridge under test (:mod:`tests.fixtures.bridge`) against the
  platform emulator, with the pieces a fault test swaps in (connector, store, session
  settings, env).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridge.asgi import running_server
from bridge.call.services import CallWatch
from bridge.call.session import SessionSettings
from bridge.convai.client import AgentConnector
from bridge.store import Store
from bridge.twilio import media as twilio
from bridge.twilio.signature import compute_signature
from tests.e2e.conftest import with_token
from tests.fixtures.bridge import (
    TOKEN,
    BridgeUnderTest,
    account_sid_of,
    bridge_config,
    running_bridge,
)
from tests.fixtures.platform_emulator import PlatformEmulator


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: connecting is refused


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections, reads and never answers; yields its port."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def status_server(status: int) -> AsyncIterator[tuple[str, list[str]]]:
    """Every request answered with ``status`` (a JSON error body); yields (url, paths seen)."""
    seen: list[str] = []

    async def answer(request: Request) -> Response:
        await request.body()
        seen.append(f"{request.method} {request.url.path}")
        return JSONResponse({"code": 20500, "message": "injected", "status": status}, status)

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST", "DELETE"])])
    async with running_server(app) as server:
        yield server.http_url, seen


@contextlib.asynccontextmanager
async def fault_bridge(
    platform: PlatformEmulator,
    *,
    connector: AgentConnector | None = None,
    store: Store | None = None,
    settings: SessionSettings | None = None,
    calls: dict[str, Any] | None = None,
    ops: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    watch: CallWatch | None = None,
    **env: str,
) -> AsyncIterator[BridgeUnderTest]:
    """The bridge of :mod:`tests.fixtures.bridge` with one routing sync at start and no
    periodic one (an idle app then has a fixed task set); ``calls`` / ``ops`` /
    ``server`` replace keys of those sections, ``env`` adds to the environment."""
    cfg = bridge_config(
        platform,
        sections={
            "platform": {"sync_interval_s": 0},
            "calls": calls,
            "ops": ops,
            "server": server,
        },
        **env,
    )
    async with running_bridge(
        platform,
        cfg,
        store=store,
        connector=connector,
        settings=settings,
        watch=watch,
        settle_sync=True,
    ) as bridge:
        yield bridge


def task_names() -> list[str]:
    """Names and coroutines of the loop's live tasks (for leak messages)."""
    return sorted(f"{t.get_name()}:{t.get_coro()}" for t in asyncio.all_tasks())


# --------------------------------------------------------------------------- raw Twilio side

STREAM_URL = "wss://bridge.test/twilio/media"  # as the bridge's TwiML names it (PUBLIC)
SILENCE_B64 = base64.b64encode(b"\xff" * 160).decode()  # 20 ms of mu-law silence


class RawStream:
    """A media stream written by hand: what Twilio would send, or what it never would."""

    def __init__(self, ws: ClientConnection, call_sid: str, stream_sid: str, app: Starlette):
        self.ws = ws
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.app = app
        self.seq = 1
        self.received: list[str | bytes] = []

    async def start(
        self,
        params: dict[str, str],
        *,
        token: bool = True,
        call_sid: str | None = None,
        account_sid: str | None = None,
    ) -> None:
        """``start`` with ``params`` and, with ``token``, the stream token the webhook
        would have written for this call (``params`` sent as given otherwise)."""
        await self.ws.send(twilio.encode(twilio.Connected()))
        sid = call_sid or self.call_sid
        account_sid = account_sid or account_sid_of(self.app)
        if token:
            params = with_token(self.app, sid, params, account_sid=account_sid)
        body = twilio.StartBody(
            streamSid=self.stream_sid, callSid=sid, accountSid=account_sid, customParameters=params
        )
        start = twilio.Start(sequenceNumber="1", start=body, streamSid=self.stream_sid)
        await self.ws.send(twilio.encode(start))

    def media_frame(self, payload_b64: str = SILENCE_B64, seq: str | None = None) -> str:
        """A media frame; ``seq`` replaces the next sequence number (absurd ones too)."""
        self.seq += 1
        return (
            '{"event":"media","sequenceNumber":"'
            + (seq if seq is not None else str(self.seq))
            + '","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"'
            + payload_b64
            + '"},"streamSid":"'
            + self.stream_sid
            + '"}'
        )

    async def media(self, payload_b64: str = SILENCE_B64) -> None:
        await self.ws.send(self.media_frame(payload_b64))

    async def stop(self) -> None:
        self.seq += 1
        stop = twilio.Stop(
            sequenceNumber=str(self.seq),
            stop=twilio.StopBody(callSid=self.call_sid),
            streamSid=self.stream_sid,
        )
        await self.ws.send(twilio.encode(stop))


_sids = itertools.count(1)


@contextlib.asynccontextmanager
async def raw_stream(
    e2e: BridgeUnderTest, *, rcvbuf: int | None = None, max_size: int | None = 1 << 24
) -> AsyncIterator[RawStream]:
    """A signed media-stream connection to the bridge, not started yet."""
    n = next(_sids)
    sock = socket.socket()
    if rcvbuf is not None:  # a tiny window: the bridge's sends back up quickly
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", e2e.server.port))
    headers = {"X-Twilio-Signature": compute_signature(TOKEN, STREAM_URL, {})}
    async with connect(
        e2e.server.ws_url + "/twilio/media",
        sock=sock,
        additional_headers=headers,
        max_size=max_size,
        max_queue=1 if rcvbuf is not None else 16,
    ) as ws:
        stream = RawStream(ws, f"CA{n:032d}", f"MZ{n:032d}", e2e.app)
        if rcvbuf is not None:  # a caller that never reads: its close could not finish
            try:
                yield stream
            finally:
                ws.transport.abort()
            return
        reader = asyncio.create_task(_read_all(stream))
        try:
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _read_all(stream: RawStream) -> None:
    """Read what the bridge sends (as Twilio does), so the closing handshake completes."""
    with contextlib.suppress(ConnectionClosed):
        async for message in stream.ws:
            stream.received.append(message)
