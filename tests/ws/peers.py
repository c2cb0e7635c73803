"""Test peers for :mod:`bridge.ws`: a recording sink, our server, and hand-driven raw ends.

Everything runs over real loopback sockets.  The raw peers speak WebSocket through
``websockets``' sans-I/O protocols by hand, so a test decides what is read, what is
answered (pongs, close echoes) and what is written in one ``write``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import cast

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from bridge.asgi import RunningServer, running_server
from bridge.ws.server import DirectWebSocketProtocol, direct_socket
from bridge.ws.socket import DirectSocket

WAIT_S = 5.0  # bound on every wait: only a failing test ever reaches it


async def wait_until(cond: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait (bounded) until ``cond()`` holds, re-checking whenever ``changed`` is set."""
    async with asyncio.timeout(WAIT_S):
        while not cond():
            changed.clear()
            await changed.wait()


class Recorder:
    """A :class:`~bridge.ws.socket.MessageSink` that writes down what it hears."""

    def __init__(self, on_closed: Callable[[int, str], None] | None = None) -> None:
        self.messages: list[str | bytes] = []
        self.closes: list[tuple[int, str]] = []
        self.writable_calls = 0
        self.changed = asyncio.Event()
        self._on_closed = on_closed

    def on_text(self, text: str) -> None:
        self.messages.append(text)
        self.changed.set()

    def on_binary(self, data: bytes) -> None:
        self.messages.append(data)
        self.changed.set()

    def on_writable(self) -> None:
        self.writable_calls += 1
        self.changed.set()

    def on_closed(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))
        self.changed.set()
        if self._on_closed is not None:
            self._on_closed(code, reason)

    async def wait_until(self, cond: Callable[[], bool]) -> None:
        await wait_until(cond, self.changed)

    async def wait_messages(self, n: int) -> list[str | bytes]:
        await wait_until(lambda: len(self.messages) >= n, self.changed)
        return self.messages

    async def wait_closed(self) -> tuple[int, str]:
        await wait_until(lambda: bool(self.closes), self.changed)
        return self.closes[0]


@dataclass
class Accepted:
    sock: DirectSocket
    sink: Recorder
    before_accept: object  # what direct_socket said before ``accept``


@dataclass
class DirectServer:
    """Our uvicorn server with a Starlette app; each accepted direct socket is queued.

    ``/direct``: accept, then wait for ``gate`` (so the peer's messages queue up in
    uvicorn), attach a :class:`Recorder`, and stay until the socket is done.
    ``/plain``: the ASGI way only (echo until disconnect).  ``/reject``: close before accept.
    """

    running: RunningServer | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    accepted: asyncio.Queue[Accepted] = field(default_factory=asyncio.Queue)
    errors: list[BaseException] = field(default_factory=list)
    sink_factory: Callable[[], Recorder] = Recorder

    def __post_init__(self) -> None:
        self.gate.set()
        self._mine: list[Accepted] = []

    async def settle(self) -> None:
        """Between tests sharing this server: end what a test left open, raise its errors."""
        self.gate.set()
        for acc in self._mine:
            if not acc.sock.closed:
                assert isinstance(acc.sock, DirectWebSocketProtocol)
                assert acc.sock._transport is not None
                acc.sock._transport.abort()
                await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
        self._mine.clear()
        while not self.accepted.empty():
            self.accepted.get_nowait()
        errors, self.errors = self.errors, []
        if errors:
            raise errors[0]

    @property
    def url(self) -> str:
        assert self.running is not None
        return self.running.ws_url

    async def next(self) -> Accepted:
        async with asyncio.timeout(WAIT_S):
            return await self.accepted.get()

    async def _direct(self, ws: WebSocket) -> None:
        try:
            before = direct_socket(ws.scope)
            await ws.accept()
            sock = direct_socket(ws.scope)
            assert sock is not None
            sink = self.sink_factory()
            accepted = Accepted(sock, sink, before)
            self._mine.append(accepted)
            self.accepted.put_nowait(accepted)
            await self.gate.wait()
            sock.attach(sink)
            await sock.wait_closed()
        except BaseException as exc:
            self.errors.append(exc)
            raise

    async def _plain(self, ws: WebSocket) -> None:
        try:
            await ws.accept()
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await ws.send_text("echo:" + message["text"])
                else:
                    await ws.send_bytes(b"echo:" + message["bytes"])
        except WebSocketDisconnect:
            pass
        except BaseException as exc:
            self.errors.append(exc)
            raise

    @staticmethod
    async def _reject(ws: WebSocket) -> None:
        await ws.close(code=1008)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                WebSocketRoute("/direct", self._direct),
                WebSocketRoute("/plain", self._plain),
                WebSocketRoute("/reject", self._reject),
            ]
        )


@contextlib.asynccontextmanager
async def direct_server(*, ws_max_size: int = 1 << 20) -> AsyncIterator[DirectServer]:
    server = DirectServer()
    async with running_server(server.app(), ws_max_size=ws_max_size) as running:
        server.running = running
        try:
            yield server
        finally:
            server.gate.set()  # a gated endpoint must not hold up the shutdown
    errors, server.errors = server.errors, []
    if errors:
        raise errors[0]


class RawPeer(asyncio.Protocol):
    """A WebSocket end driven by hand: ``websockets``' sans-I/O protocol on a raw socket.

    Received frames are recorded.  While ``answer`` is True whatever the protocol queues
    in response (pongs, the close echo) is written at once; set it False for a peer that
    never answers; with ``hang_up`` False it never ends TCP itself.  ``discard`` drops incoming bytes unparsed (a peer catching up fast).
    """

    def __init__(self, conn: Protocol, on_open: Callable[[RawPeer], None] | None = None) -> None:
        self.conn = conn
        self.on_open = on_open
        self.transport: asyncio.Transport | None = None
        self.frames: list[Frame] = []
        self.answer = True
        self.hang_up = True
        self.discard = False
        self.discarded = 0
        self.opened = asyncio.Event()
        self.eof = asyncio.Event()
        self.lost = asyncio.Event()
        self.changed = asyncio.Event()
        self.on_made: Callable[[RawPeer], None] | None = None  # told once connected

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        if self.on_made is not None:
            self.on_made(self)
        if isinstance(self.conn, ClientProtocol):
            self.conn.send_request(self.conn.connect())
            self.flush()

    def data_received(self, data: bytes) -> None:
        if self.discard:
            self.discarded += len(data)
            self.changed.set()
            return
        self.conn.receive_data(data)
        for event in self.conn.events_received():
            if isinstance(event, Request):
                assert isinstance(self.conn, ServerProtocol)
                self.conn.send_response(self.conn.accept(event))
                self._open()
            elif isinstance(event, Response):
                self._open()
            else:
                self.frames.append(event)
        if self.answer:
            self.flush()
        else:
            self.conn.data_to_send()  # dropped: this peer never answers
        self.changed.set()

    def eof_received(self) -> bool:
        self.eof.set()
        self.changed.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        self.changed.set()

    # driving

    def _open(self) -> None:
        if self.on_open is not None:
            self.on_open(self)  # may queue frames: they go out with the handshake, one write
        self.flush()
        self.opened.set()

    def flush(self) -> None:
        assert self.transport is not None
        for chunk in self.conn.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.hang_up:  # the protocol's end of TCP after the closing handshake
                self.transport.close()

    def data_frames(self) -> list[Frame]:
        return [f for f in self.frames if f.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)]

    def of(self, opcode: Opcode) -> list[Frame]:
        return [f for f in self.frames if f.opcode is opcode]

    async def wait(self, cond: Callable[[], bool]) -> None:
        await wait_until(cond, self.changed)

    async def wait_close_frame(self) -> Frame:
        await self.wait(lambda: bool(self.of(Opcode.CLOSE)))
        return self.of(Opcode.CLOSE)[0]

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


@dataclass
class RawServer:
    """A TCP server whose connections are :class:`RawPeer` server ends."""

    port: int
    peers: asyncio.Queue[RawPeer]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def next(self) -> RawPeer:
        async with asyncio.timeout(WAIT_S):
            peer = await self.peers.get()
            await peer.opened.wait()
            return peer


@contextlib.asynccontextmanager
async def raw_server(
    on_open: Callable[[RawPeer], None] | None = None, *, handshake: bool = True
) -> AsyncIterator[RawServer]:
    """Serve raw peers; ``handshake=False``: accept TCP and never say a word."""
    loop = asyncio.get_running_loop()
    peers: asyncio.Queue[RawPeer] = asyncio.Queue()
    made: list[RawPeer] = []

    def factory() -> asyncio.Protocol:
        peer = RawPeer(ServerProtocol(max_size=None), on_open)
        if not handshake:
            peer.discard = True
        made.append(peer)
        # Queued once connected: since 3.12 the loop calls connection_made a step after
        # the factory, and a test takes the peer to write on its transport.
        peer.on_made = peers.put_nowait
        return peer

    server = await loop.create_server(factory, "127.0.0.1", 0)
    try:
        yield RawServer(server.sockets[0].getsockname()[1], peers)
    finally:
        for peer in made:
            peer.abort()
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def raw_client(url: str) -> AsyncIterator[RawPeer]:
    """A raw client end, handshake done."""
    loop = asyncio.get_running_loop()
    wsuri = parse_uri(url)
    peer = RawPeer(ClientProtocol(wsuri, max_size=None))
    await loop.create_connection(lambda: peer, wsuri.host, wsuri.port)
    try:
        async with asyncio.timeout(WAIT_S):
            await peer.opened.wait()
        yield peer
    finally:
        peer.abort()
