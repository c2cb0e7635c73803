"""bridge.ws.client: open_socket against websockets' own server and hand-driven raw servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.frames import Opcode

import bridge.ws.client
from bridge.ws.client import ClientSocket, open_socket
from tests.ws.peers import WAIT_S, RawPeer, Recorder, raw_server


class EchoServer:
    """websockets' asyncio server: echoes, sends fragments on request, closes on request."""

    def __init__(self) -> None:
        self.closes: asyncio.Queue[tuple[int | None, str | None]] = asyncio.Queue()
        self.url = ""
        self.headers: list[Headers] = []

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.headers.append(ws.request.headers)
        try:
            async for message in ws:
                if message == "fragments":
                    await ws.send(["frag", "ment", "ed ü"])
                    await ws.send([b"bi", b"nary"])
                elif message == "ping me":  # the client's protocol answers pings
                    await asyncio.wait_for(await ws.ping(b"are you there"), WAIT_S)
                    await ws.send("ponged")
                elif message == "close":
                    await ws.close(4000, "server bye")
                elif message == "burst then close":
                    await ws.send("one")
                    await ws.send(b"two")
                    await ws.close(4005, "done")
                elif isinstance(message, str):
                    await ws.send("echo:" + message)
                else:
                    await ws.send(b"echo:" + message)
        except ConnectionClosed:
            pass
        self.closes.put_nowait((ws.close_code, ws.close_reason))


@pytest.fixture
async def echo_server() -> AsyncIterator[EchoServer]:
    echo = EchoServer()
    async with serve(echo.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        echo.url = f"ws://127.0.0.1:{port}/"
        yield echo


async def _open(url: str, **kwargs: object) -> tuple[ClientSocket, Recorder]:
    sock = await open_socket(url, ping_interval_s=None, **kwargs)  # type: ignore[arg-type]
    sink = Recorder()
    sock.attach(sink)
    return sock, sink


async def test_text_binary_and_fragments_from_websockets_server(echo_server: EchoServer) -> None:
    sock, sink = await _open(
        echo_server.url + "path?q=1", user_agent="bridge-test/1", headers=[("X-Sig", "abc")]
    )
    assert echo_server.headers[0].get_all("User-Agent") == ["bridge-test/1"]
    assert echo_server.headers[0]["X-Sig"] == "abc"
    assert not sock.closed and sock.can_send
    assert sock.send_texts(["hello", "wörld"])
    assert sock.send_text("fragments")
    assert sock.send_text("ping me")
    assert await sink.wait_messages(5) == [
        "echo:hello",
        "echo:wörld",
        "fragmented ü",
        b"binary",
        "ponged",
    ]
    sock.close(4001, "client bye")
    assert await asyncio.wait_for(echo_server.closes.get(), WAIT_S) == (4001, "client bye")
    await asyncio.wait_for(sock.wait_closed(), WAIT_S)
    assert sink.closes == [(4001, "client bye")]
    assert (sock.close_code, sock.close_reason) == (4001, "client bye")
    assert (sock.closed, sock.can_send) == (True, False)


async def test_server_close_reaches_the_sink_once_and_sends_are_refused(
    echo_server: EchoServer,
) -> None:
    answers: list[bool] = []
    sock = await open_socket(echo_server.url, ping_interval_s=None)
    # Sending from on_closed (the server's close frame is in, TCP still up): refused quietly.
    sink = Recorder(on_closed=lambda code, reason: answers.append(sock.send_texts(["x"])))
    sock.attach(sink)
    sock.send_text("close")
    assert await sink.wait_closed() == (4000, "server bye")
    assert not sock.can_send
    sock.close()  # after the peer's close: nothing to do, nothing raised
    await asyncio.wait_for(sock.wait_closed(), WAIT_S)
    assert answers == [False]
    assert sink.closes == [(4000, "server bye")]
    assert (sock.close_code, sock.close_reason) == (4000, "server bye")
    assert sock.send_texts(["after"]) is False
    assert await asyncio.wait_for(echo_server.closes.get(), WAIT_S) == (4000, "server bye")


async def test_messages_and_close_before_attach_are_delivered_at_attach(
    echo_server: EchoServer,
) -> None:
    sock = await open_socket(echo_server.url, ping_interval_s=None)
    sock.send_text("burst then close")
    await asyncio.wait_for(sock.wait_closed(), WAIT_S)  # all of it before attach
    sink = Recorder()
    sock.attach(sink)
    assert sink.messages == ["one", b"two"]
    assert sink.closes == [(4005, "done")]


async def test_messages_sent_with_the_handshake_are_delivered_in_order() -> None:
    def greet(peer: RawPeer) -> None:  # queued with the 101 response: one write
        peer.conn.send_text(b"first")
        peer.conn.send_binary(b"\x00second")
        peer.conn.send_text("thïrd".encode())

    async with raw_server(greet) as server:
        sock = await open_socket(server.url, ping_interval_s=None)
        peer = await server.next()
        peer.conn.send_text(b"fourth")
        peer.flush()
        sink = Recorder()
        await asyncio.sleep(0)  # let "fourth" arrive (or not) before attach: either way in order
        sock.attach(sink)
        assert await sink.wait_messages(4) == ["first", b"\x00second", "thïrd", "fourth"]


async def test_messages_in_the_same_read_as_the_close_are_delivered_client_side() -> None:
    async with raw_server() as server:
        sock, sink = await _open(server.url)
        peer = await server.next()
        peer.conn.send_text(b"last words")
        peer.conn.send_binary(b"\x01")
        peer.conn.send_close(4006, "bye")
        peer.flush()  # one write: the messages and the close come in one read
        assert await sink.wait_closed() == (4006, "bye")
        assert sink.messages == ["last words", b"\x01"]
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)


async def test_server_dropping_tcp_is_1006() -> None:
    async with raw_server() as server:
        sock, sink = await _open(server.url)
        peer = await server.next()
        peer.abort()
        assert await sink.wait_closed() == (1006, "")
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)
        assert sock.close_code == 1006
        assert sock.send_text("x") is False


async def test_server_never_answering_our_close_ends_after_close_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bridge.ws.client, "CLOSE_TIMEOUT_S", 0.05)
    async with raw_server() as server:
        sock, sink = await _open(server.url)
        peer = await server.next()
        peer.answer = False
        sock.close(1001, "going")
        assert (await peer.wait_close_frame()).data[2:] == b"going"
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)
        assert sink.closes == [(1006, "")]
        await peer.wait(peer.lost.is_set)


async def test_server_never_closing_tcp_after_the_handshake_ends_after_close_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bridge.ws.client, "CLOSE_TIMEOUT_S", 0.05)
    async with raw_server() as server:
        sock, sink = await _open(server.url)
        peer = await server.next()
        peer.hang_up = False
        sock.close(1000)
        await peer.wait_close_frame()  # answered, but the raw server keeps TCP open
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)
        assert sink.closes == [(1000, "")]


async def test_invalid_utf8_from_the_server_closes_1007(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge.ws.client, "CLOSE_TIMEOUT_S", 0.05)
    async with raw_server() as server:
        sock, sink = await _open(server.url)
        peer = await server.next()
        peer.answer = False  # the sink hears 1007 without the server's echo
        peer.conn.send_text(b"ok")
        peer.conn.send_text(b"\xc3")  # a truncated two-byte sequence
        peer.flush()
        assert await sink.wait_closed() == (1007, "invalid UTF-8")
        assert sink.messages == ["ok"]
        close = await peer.wait_close_frame()
        assert close.data[:2] == (1007).to_bytes(2, "big")
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)
        assert sink.closes == [(1007, "invalid UTF-8")]
        assert sock.close_code == 1007


async def test_utf8_split_across_fragments_is_fine() -> None:
    async with raw_server() as server:
        _, sink = await _open(server.url)
        peer = await server.next()
        peer.conn.send_text("é".encode()[:1], fin=False)
        peer.conn.send_continuation("é".encode()[1:], fin=True)
        peer.flush()
        assert await sink.wait_messages(1) == ["é"]
        assert sink.closes == []


async def test_oversized_message_from_the_server_closes_1009() -> None:
    async with raw_server() as server:
        sock, sink = await _open(server.url, max_size=1024)
        peer = await server.next()
        peer.conn.send_text(b"fits")
        peer.conn.send_text(b"x" * 2000)
        peer.flush()
        assert (await sink.wait_closed())[0] == 1009
        assert sink.messages == ["fits"]
        close = await peer.wait_close_frame()
        assert close.data[:2] == (1009).to_bytes(2, "big")
        peer.abort()
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)
        assert sock.close_code == 1009 and len(sink.closes) == 1


async def test_connection_refused_is_oserror() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError):
        await open_socket(f"ws://127.0.0.1:{port}/", open_timeout_s=WAIT_S)


async def test_silent_server_is_an_open_timeout() -> None:
    async with raw_server(handshake=False) as server:
        with pytest.raises(TimeoutError):
            await open_socket(server.url, open_timeout_s=0.05)


async def test_a_reply_that_is_not_http_fails_the_handshake_at_once() -> None:
    async with raw_server(handshake=False) as server:
        opening = asyncio.ensure_future(open_socket(server.url, open_timeout_s=WAIT_S))
        peer = await asyncio.wait_for(server.peers.get(), WAIT_S)
        assert peer.transport is not None
        peer.transport.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")  # and the TCP stays open
        with pytest.raises(InvalidHandshake):
            await opening


async def test_server_hanging_up_during_the_handshake_is_an_error() -> None:
    async with raw_server(handshake=False) as server:
        opening = asyncio.ensure_future(open_socket(server.url, open_timeout_s=WAIT_S))
        peer = await asyncio.wait_for(server.peers.get(), WAIT_S)
        peer.abort()
        with pytest.raises(Exception) as err:  # which one: see below
            await opening
        assert isinstance(err.value, OSError | InvalidHandshake)


async def test_keepalive_pings_and_accepts_pongs() -> None:
    async with raw_server() as server:
        sock = await open_socket(server.url, ping_interval_s=0.01, ping_timeout_s=WAIT_S)
        sink = Recorder()
        sock.attach(sink)
        peer = await server.next()
        # With a ping timeout, the next ping is only scheduled once the pong came back.
        await peer.wait(lambda: len(peer.of(Opcode.PING)) >= 3)
        assert sink.closes == []
        assert sock.can_send
        sock.close()
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)


async def test_unanswered_ping_closes_1011() -> None:
    async with raw_server() as server:
        sock = await open_socket(server.url, ping_interval_s=0.01, ping_timeout_s=0.05)
        sink = Recorder()
        sock.attach(sink)
        peer = await server.next()
        peer.answer = False  # never a pong
        assert await sink.wait_closed() == (1011, "keepalive ping timeout")
        await asyncio.wait_for(sock.wait_closed(), WAIT_S)
        assert peer.of(Opcode.PING)
        close = await peer.wait_close_frame()
        assert close.data[:2] == (1011).to_bytes(2, "big")
        assert len(sink.closes) == 1


async def test_backpressure_when_the_server_stops_reading() -> None:
    chunk = "z" * (256 << 10)
    async with raw_server() as server:
        sock, sink = await _open(server.url)
        peer = await server.next()
        assert peer.transport is not None
        peer.transport.pause_reading()
        sent = 0
        while sock.can_send and sent < 400:  # bound: 100 MiB
            assert sock.send_text(chunk)
            sent += 1
        assert (sock.can_send, sink.writable_calls) == (False, 0)  # the buffer is full
        peer.discard = True
        peer.transport.resume_reading()
        await sink.wait_until(lambda: sink.writable_calls >= 1)
        assert sock.can_send
        assert sock.send_text("still here")
