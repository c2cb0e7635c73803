"""bridge.ws over loopback: when the fast framing path (bridge.ws.frames) is taken, and not.

Our client and our server take it once the handshake is done on a connection without
extensions; a client that negotiates permessage-deflate keeps the server on the
library's path.  Frames that the library read during the handshake (a client's sent
before the 101, a server's in the same read as the 101) keep their order, and so does
a frame cut across that read and the next.  Nothing behind a peer's close frame is
delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from bridge.asgi import running_server
from bridge.ws.client import open_socket
from bridge.ws.server import EXTENSION, DirectWebSocketProtocol, direct_socket
from tests.ws.peers import WAIT_S, DirectServer, RawPeer, Recorder, raw_client

# One server per module (and event loop): uvicorn's start and stop cost ~0.2 s each.
pytestmark = pytest.mark.asyncio(loop_scope="module")


def text(payload: bytes, *, mask: bool) -> bytes:
    """A text frame as websockets serializes it (``mask``: as a client sends it)."""
    return Frame(Opcode.TEXT, payload).serialize(mask=mask, extensions=[])


# ---------------------------------------------------------------------- taken, and not


async def test_our_client_and_server_take_the_fast_path_both_ways(server: DirectServer) -> None:
    client = await open_socket(server.url + "/direct", ping_interval_s=None)
    heard = Recorder()
    client.attach(heard)
    acc = await server.next()
    assert client._splitter is not None and client._fast_send
    big = "ü" * 40000  # 80000 bytes: a 64-bit length field

    assert client.send_texts(["one", "x" * 200, big])
    assert await acc.sink.wait_messages(3) == ["one", "x" * 200, big]
    # The server decides on its first read after the 101: nothing of a frame held back.
    assert isinstance(acc.sock, DirectWebSocketProtocol)
    assert acc.sock._splitter is not None and acc.sock._fast_send

    assert acc.sock.send_texts(["a", "y" * 200, big])
    assert await heard.wait_messages(3) == ["a", "y" * 200, big]
    client.close(4000, "done")
    assert await acc.sink.wait_closed() == (4000, "done")
    await asyncio.wait_for(client.wait_closed(), WAIT_S)
    assert heard.closes == [(4000, "done")]


async def test_a_client_negotiating_deflate_keeps_the_server_on_the_librarys_path(
    server: DirectServer,
) -> None:
    big = "compressible " * 5000
    async with connect(server.url + "/direct") as ws:  # compression="deflate" by default
        acc = await server.next()
        assert ws.protocol.extensions  # uvicorn's server accepted permessage-deflate
        await ws.send("hello")
        await ws.send(b"\x00\x01")
        await ws.send(["frag", "ment"])
        await ws.send(big)
        assert await acc.sink.wait_messages(4) == ["hello", b"\x00\x01", "fragment", big]
        assert acc.sock._splitter is None and not acc.sock._fast_send
        assert acc.sock.send_texts(["back", big])
        assert await ws.recv() == "back"
        assert await ws.recv() == big


class CountingPeer(RawPeer):
    """A raw end that counts the bytes it reads off the wire."""

    def __init__(self, conn: ClientProtocol) -> None:
        super().__init__(conn)
        self.bytes_in = 0

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        super().data_received(data)


async def test_messages_are_compressed_on_the_wire_both_ways_with_deflate(
    server: DirectServer,
) -> None:
    big = "compressible " * 5000
    wsuri = parse_uri(server.url + "/direct")
    conn = ClientProtocol(wsuri, extensions=[ClientPerMessageDeflateFactory()], max_size=None)
    peer = CountingPeer(conn)
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: peer, wsuri.host, wsuri.port)
    try:
        await asyncio.wait_for(peer.opened.wait(), WAIT_S)
        acc = await server.next()
        conn.send_text(big.encode())
        chunks = conn.data_to_send()
        assert sum(len(c) for c in chunks) < len(big) // 10
        assert peer.transport is not None
        peer.transport.write(b"".join(chunks))
        assert await acc.sink.wait_messages(1) == [big]
        assert acc.sock._splitter is None

        before = peer.bytes_in
        assert acc.sock.send_texts([big])
        await peer.wait(lambda: bool(peer.data_frames()))
        assert bytes(peer.data_frames()[0].data) == big.encode()
        assert peer.bytes_in - before < len(big) // 10
    finally:
        peer.abort()


# ---------------------------------------------------------------------- server: frames before the 101


@dataclass
class Held:
    """A connection to :class:`HeldServer`: its endpoint accepts once ``go`` is set."""

    proto: DirectWebSocketProtocol  # uvicorn's protocol object, before the accept
    go: asyncio.Event = field(default_factory=asyncio.Event)
    sink: Recorder = field(default_factory=Recorder)


class HeldServer:
    """Our uvicorn server; ``/held`` waits before accepting, then attaches a Recorder."""

    def __init__(self) -> None:
        self.held: asyncio.Queue[Held] = asyncio.Queue()
        self.errors: list[BaseException] = []
        self.url = ""

    async def endpoint(self, ws: WebSocket) -> None:
        try:
            proto = ws.scope["extensions"][EXTENSION]["socket"]
            held = Held(proto)
            self.held.put_nowait(held)
            await asyncio.wait_for(held.go.wait(), WAIT_S)
            await ws.accept()
            sock = direct_socket(ws.scope)
            assert sock is proto
            sock.attach(held.sink)
            await sock.wait_closed()
        except BaseException as exc:
            self.errors.append(exc)
            raise

    async def next(self) -> Held:
        return await asyncio.wait_for(self.held.get(), WAIT_S)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def held_server() -> AsyncIterator[HeldServer]:
    server = HeldServer()
    app = Starlette(routes=[WebSocketRoute("/held", server.endpoint)])
    async with running_server(app) as running:
        server.url = running.ws_url + "/held"
        yield server
    assert server.errors == []


async def poll_until(cond: Callable[[], bool]) -> None:
    """Wait (bounded) for a state of the server's protocol that no event announces."""
    async with asyncio.timeout(WAIT_S):
        while not cond():  # noqa: ASYNC110 - no event announces it
            await asyncio.sleep(0.001)


BIG = text(b"cut" * 100, mask=True)  # a 16-bit length field


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(  # whole frames
            text(b"p1", mask=True) + text(b"p2" * 100, mask=True),
            text(b"a1", mask=True) + text(b"a2", mask=True),
            ["p1", "p2" * 100, "a1", "a2"],
            id="whole",
        ),
        pytest.param(  # half a frame before the 101, the rest after it
            text(b"p1", mask=True) + BIG[:5],
            BIG[5:] + text(b"a1", mask=True),
            ["p1", "cut" * 100, "a1"],
            id="partial",
        ),
        pytest.param(  # the start of a fragmented message
            Frame(Opcode.TEXT, b"frag", fin=False).serialize(mask=True),
            Frame(Opcode.CONT, b"ment").serialize(mask=True) + text(b"a1", mask=True),
            ["fragment", "a1"],
            id="fragment",
        ),
    ],
)
async def test_frames_sent_before_the_101_arrive_in_order(
    held_server: HeldServer, before: bytes, after: bytes, expected: list[str]
) -> None:
    # A client may not send before the 101 (RFC 6455 4.1); one that does in a write of its
    # own has its bytes held by the server until the accept, then read from a frame
    # boundary on the fast path.  (Bytes in the same read as the request never reach us:
    # uvicorn's HTTP protocol drops them at the upgrade.)
    wsuri = parse_uri(held_server.url)
    conn = ClientProtocol(wsuri, max_size=None)
    conn.send_request(conn.connect())
    reader, writer = await asyncio.open_connection(wsuri.host, wsuri.port)
    try:
        writer.write(b"".join(conn.data_to_send()))
        held = await held_server.next()  # the server has read the request
        writer.write(before)
        await poll_until(lambda: len(held.proto._pending) == len(before))
        held.go.set()
        async with asyncio.timeout(WAIT_S):
            while not conn.events_received():
                conn.receive_data(await reader.read(4096))
        assert conn.handshake_exc is None
        writer.write(after)
        assert await held.sink.wait_messages(len(expected)) == expected
        assert held.proto._splitter is not None
        assert held.sink.closes == []
    finally:
        writer.close()


# ---------------------------------------------------------------------- client: frames behind the 101

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


@contextlib.asynccontextmanager
async def handshake_server(after: Handler) -> AsyncIterator[str]:
    """A raw server: reads the request and calls ``after(reader, writer, response)``."""
    tasks: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ServerProtocol()
        conn.receive_data(await reader.readuntil(b"\r\n\r\n"))
        (request,) = conn.events_received()
        assert isinstance(request, Request)
        response = conn.accept(request)
        assert isinstance(response, Response) and response.status_code == 101
        conn.send_response(response)
        try:
            await after(reader, writer, b"".join(conn.data_to_send()))
        finally:
            writer.close()

    def spawn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.append(asyncio.ensure_future(handle(reader, writer)))

    srv = await asyncio.start_server(spawn, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"
    finally:
        srv.close()
        await srv.wait_closed()
        for task in tasks:
            await asyncio.wait_for(task, WAIT_S)  # raises what the handler raised


async def test_frames_in_the_same_write_as_the_101_arrive_in_order() -> None:
    async def after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: bytes) -> None:
        writer.write(r + text(b"one", mask=False) + text(b"two" * 50, mask=False))
        await reader.read(1)  # until the client goes

    async with handshake_server(after) as url:
        sock = await open_socket(url, ping_interval_s=None)
        sink = Recorder()
        sock.attach(sink)
        assert await sink.wait_messages(2) == ["one", "two" * 50]
        assert sock._splitter is not None
        sock.close()
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)


@pytest.mark.parametrize("at", [1, 3, 6])  # in the 16-bit length field, in the payload
async def test_a_frame_cut_across_the_101_read_and_the_next_arrives_whole(at: int) -> None:
    opened = asyncio.Event()
    big = text(b"big" * 100, mask=False)

    async def after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: bytes) -> None:
        writer.write(r + text(b"one", mask=False) + big[:at])
        await asyncio.wait_for(opened.wait(), WAIT_S)  # the client has read that much
        writer.write(big[at:] + text(b"after", mask=False))
        await reader.read(1)

    async with handshake_server(after) as url:
        sock = await open_socket(url, ping_interval_s=None)
        opened.set()
        sink = Recorder()
        sock.attach(sink)
        assert await sink.wait_messages(3) == ["one", "big" * 100, "after"]
        assert sock._splitter is not None
        sock.close()
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)


# ---------------------------------------------------------------------- nothing after a close


async def test_a_message_behind_the_clients_close_does_not_reach_the_server_sink(
    server: DirectServer,
) -> None:
    async with raw_client(server.url + "/direct") as peer:
        acc = await server.next()
        peer.conn.send_text(b"first")
        peer.flush()
        assert await acc.sink.wait_messages(1) == ["first"]
        assert acc.sock._splitter is not None
        peer.conn.send_close(4000, "bye")
        assert peer.transport is not None
        peer.transport.write(b"".join(peer.conn.data_to_send()) + text(b"late", mask=True))
        assert await acc.sink.wait_closed() == (4000, "bye")
        await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
        assert acc.sink.messages == ["first"]
        assert acc.sink.closes == [(4000, "bye")]


async def test_a_message_behind_the_servers_close_does_not_reach_the_client_sink() -> None:
    close = Frame(Opcode.CLOSE, b"\x0f\xa0bye").serialize(mask=False, extensions=[])

    async def after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: bytes) -> None:
        writer.write(r + text(b"first", mask=False) + close + text(b"late", mask=False))
        await reader.read(4096)  # the client's close echo, then we end TCP

    async with handshake_server(after) as url:
        sock = await open_socket(url, ping_interval_s=None)
        sink = Recorder()
        sock.attach(sink)
        assert await sink.wait_closed() == (4000, "bye")
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)
        assert sink.messages == ["first"]
        assert sink.closes == [(4000, "bye")]
