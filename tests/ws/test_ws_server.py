"""bridge.ws.server: our uvicorn protocol class, direct sockets and the ASGI fallback."""

from __future__ import annotations

import asyncio

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Opcode
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from bridge.asgi import running_server
from bridge.ws.client import open_socket
from bridge.ws.server import EXTENSION, DirectWebSocketProtocol, direct_socket
from tests.ws.peers import WAIT_S, DirectServer, Recorder, direct_server, raw_client

# One server per module (and event loop): uvicorn's start and stop cost ~0.2 s each.
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_text_and_binary_both_ways_with_our_client(server: DirectServer) -> None:
    client = await open_socket(server.url + "/direct", ping_interval_s=None)
    heard = Recorder()
    client.attach(heard)
    acc = await server.next()
    assert acc.before_accept is None  # direct_socket before accept: nothing yet

    assert client.send_texts(["one", "two"])
    assert client.send_text("three")
    assert await acc.sink.wait_messages(3) == ["one", "two", "three"]

    assert acc.sock.can_send
    assert acc.sock.send_texts(["a", "ü" * 3])
    assert acc.sock.send_text("c")
    assert await heard.wait_messages(3) == ["a", "üüü", "c"]

    client.close()
    await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
    await asyncio.wait_for(client.wait_closed(), WAIT_S)


async def test_websockets_client_text_binary_and_fragments(server: DirectServer) -> None:
    async with connect(server.url + "/direct") as ws:
        acc = await server.next()
        await ws.send("hello")
        await ws.send(b"\x00\x01\xff")
        await ws.send(iter(["frag", "ment", "ed ü"]))
        await ws.send([b"bi", b"nary"])
        assert await acc.sink.wait_messages(4) == [
            "hello",
            b"\x00\x01\xff",
            "fragmented ü",
            b"binary",
        ]
        acc.sock.send_texts(["back", "again"])
        assert await ws.recv() == "back"
        assert await ws.recv() == "again"
        await asyncio.wait_for(await ws.ping(b"still there?"), WAIT_S)  # uvicorn answers

        await ws.close(4002, "client bye")
        assert await acc.sink.wait_closed() == (4002, "client bye")
        await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
        assert (acc.sock.close_code, acc.sock.close_reason) == (4002, "client bye")
        assert acc.sink.closes == [(4002, "client bye")]
        assert acc.sock.closed and not acc.sock.can_send


async def test_messages_queued_by_uvicorn_before_attach_arrive_in_order(
    server: DirectServer,
) -> None:
    server.gate.clear()
    async with raw_client(server.url + "/direct") as peer:
        acc = await server.next()
        peer.conn.send_text(b"first")
        peer.conn.send_binary(b"\x02")
        peer.conn.send_text(b"third")
        peer.conn.send_ping(b"p")
        peer.flush()  # one write: the server queues the messages for the ASGI app...
        await peer.wait(lambda: bool(peer.of(Opcode.PONG)))  # ...before it answers
        assert isinstance(acc.sock, DirectWebSocketProtocol)
        assert acc.sock._queue.qsize() == 3
        peer.conn.send_text(b"fourth")
        peer.flush()
        server.gate.set()
        assert await acc.sink.wait_messages(4) == ["first", b"\x02", "third", "fourth"]
        peer.conn.send_text(b"fifth")  # and reading goes on after attach
        peer.flush()
        assert (await acc.sink.wait_messages(5))[4] == "fifth"
        assert acc.sink.closes == []


async def test_peer_close_before_attach_is_delivered_after_its_messages(
    server: DirectServer,
) -> None:
    server.gate.clear()
    async with raw_client(server.url + "/direct") as peer:
        acc = await server.next()
        peer.conn.send_text(b"one")
        peer.conn.send_binary(b"two")
        peer.conn.send_close(4003, "early")
        peer.flush()
        await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)  # gone before attach
        assert (await peer.wait_close_frame()).data[:2] == (4003).to_bytes(2, "big")
        server.gate.set()
        assert await acc.sink.wait_closed() == (4003, "early")
        assert acc.sink.messages == ["one", b"two"]
        assert acc.sink.closes == [(4003, "early")]


async def test_messages_in_the_same_read_as_the_close_are_delivered_server_side(
    server: DirectServer,
) -> None:
    async with raw_client(server.url + "/direct") as peer:
        acc = await server.next()
        peer.conn.send_text(b"last words")
        peer.conn.send_binary(b"\x01")
        peer.conn.send_close(4006, "bye")
        peer.flush()
        assert await acc.sink.wait_closed() == (4006, "bye")
        assert acc.sink.messages == ["last words", b"\x01"]
        await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)


async def test_server_close_reaches_both_sinks_once(server: DirectServer) -> None:
    sent_after: list[bool] = []
    client = await open_socket(server.url + "/direct", ping_interval_s=None)
    # A sink that answers its close by sending: must be refused quietly, not raise.
    heard = Recorder(on_closed=lambda code, reason: sent_after.append(client.send_text("x")))
    client.attach(heard)
    acc = await server.next()

    acc.sock.close(4000, "server bye")
    assert not acc.sock.can_send
    assert acc.sock.send_texts(["late"]) is False
    acc.sock.close(1000)  # idempotent
    assert await heard.wait_closed() == (4000, "server bye")
    await asyncio.wait_for(client.wait_closed(), WAIT_S)
    await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
    assert acc.sink.closes == [(4000, "server bye")]  # the client's echo
    assert heard.closes == [(4000, "server bye")]
    assert sent_after == [False]
    assert (client.close_code, client.close_reason) == (4000, "server bye")
    assert (acc.sock.close_code, acc.sock.close_reason) == (4000, "server bye")
    assert client.send_texts(["after"]) is False
    assert acc.sock.send_text("after") is False


async def test_client_close_reaches_both_sinks_once(server: DirectServer) -> None:
    client = await open_socket(server.url + "/direct", ping_interval_s=None)
    heard = Recorder()
    client.attach(heard)
    acc = await server.next()

    client.close(4001, "client bye")
    assert client.send_text("late") is False
    assert await acc.sink.wait_closed() == (4001, "client bye")
    await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
    await asyncio.wait_for(client.wait_closed(), WAIT_S)
    assert acc.sink.closes == [(4001, "client bye")]
    assert heard.closes == [(4001, "client bye")]
    assert (acc.sock.close_code, acc.sock.close_reason) == (4001, "client bye")


async def test_peer_dropping_tcp_is_1006(server: DirectServer) -> None:
    async with raw_client(server.url + "/direct") as peer:
        acc = await server.next()
        peer.abort()
        assert await acc.sink.wait_closed() == (1006, "")
        await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
        assert acc.sock.close_code == 1006
        assert acc.sock.send_text("x") is False


async def test_peer_never_answering_our_close_ends_after_the_close_timeout(
    server: DirectServer,
) -> None:
    async with raw_client(server.url + "/direct") as peer:
        acc = await server.next()
        assert isinstance(acc.sock, DirectWebSocketProtocol)
        acc.sock.close_timeout = 0.05  # the server's bound (10 s), shortened for the test
        peer.answer = False
        acc.sock.close(1000, "bye")
        assert (await peer.wait_close_frame()).data[2:] == b"bye"
        await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
        assert acc.sink.closes == [(1006, "")]
        await asyncio.wait_for(peer.lost.wait(), WAIT_S)


@pytest.mark.parametrize("attached", [True, False])
async def test_invalid_utf8_closes_1007(attached: bool, server: DirectServer) -> None:
    if not attached:
        server.gate.clear()
    async with raw_client(server.url + "/direct") as peer:
        acc = await server.next()
        assert isinstance(acc.sock, DirectWebSocketProtocol)
        acc.sock.close_timeout = 0.05  # the server's bound (10 s), shortened for the test
        peer.answer = False  # the sink hears 1007 without the peer's echo
        peer.conn.send_text(b"ok")
        peer.conn.send_text(b"bad \xff\xfe")
        peer.flush()
        close = await peer.wait_close_frame()
        assert close.data[:2] == (1007).to_bytes(2, "big")
        if not attached:
            await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
            server.gate.set()
        code, _ = await acc.sink.wait_closed()
        assert code == 1007
        assert acc.sink.messages == ["ok"]
        await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
        assert acc.sink.closes[0][0] == 1007 and len(acc.sink.closes) == 1
        assert acc.sock.close_code == 1007


async def test_oversized_messages_close_1009() -> None:
    async with direct_server(ws_max_size=1024) as server:
        client = await open_socket(server.url + "/direct", ping_interval_s=None)
        heard = Recorder()
        client.attach(heard)
        acc = await server.next()
        client.send_texts(["fits", "x" * 2000])
        assert (await acc.sink.wait_closed())[0] == 1009
        assert acc.sink.messages == ["fits"]
        assert (await heard.wait_closed())[0] == 1009  # the server's close frame
        await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
        await asyncio.wait_for(client.wait_closed(), WAIT_S)
        assert acc.sock.close_code == 1009

        async with connect(server.url + "/direct") as ws:  # too big once reassembled
            acc = await server.next()
            await ws.send(["y" * 600, "y" * 600])
            assert (await acc.sink.wait_closed())[0] == 1009
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT_S)
            assert ws.close_code == 1009


async def test_rejected_before_accept_is_invalid_status(server: DirectServer) -> None:
    with pytest.raises(InvalidStatus) as err:
        await open_socket(server.url + "/reject")
    assert err.value.response.status_code == 403


async def test_asgi_fallback_still_works_on_our_protocol(server: DirectServer) -> None:
    async with connect(server.url + "/plain") as ws:
        await ws.send("hi")
        assert await ws.recv() == "echo:hi"
        await ws.send(b"\x01")
        assert await ws.recv() == b"echo:\x01"
        await ws.send(["frag", "ment"])
        assert await ws.recv() == "echo:fragment"
    client = await open_socket(server.url + "/plain", ping_interval_s=None)
    heard = Recorder()
    client.attach(heard)
    client.send_texts(["a", "b"])
    assert await heard.wait_messages(2) == ["echo:a", "echo:b"]
    client.close()
    await asyncio.wait_for(client.wait_closed(), WAIT_S)
    assert heard.closes == [(1000, "")]


async def test_direct_socket_without_the_extension_is_none() -> None:
    assert direct_socket({"type": "websocket"}) is None
    assert direct_socket({"type": "websocket", "extensions": {}}) is None
    assert direct_socket({"extensions": {EXTENSION: {"socket": object()}}}) is None
    assert direct_socket({"extensions": {EXTENSION: "nonsense"}}) is None


async def test_attach_twice_is_an_error(server: DirectServer) -> None:
    async with connect(server.url + "/direct"):
        acc = await server.next()  # attached already: the gate is open
        with pytest.raises(RuntimeError):
            acc.sock.attach(Recorder())


async def test_backpressure_when_the_peer_stops_reading(server: DirectServer) -> None:
    chunk = "z" * (256 << 10)
    async with raw_client(server.url + "/direct") as peer:
        acc = await server.next()
        assert peer.transport is not None
        peer.transport.pause_reading()
        sent = 0
        while acc.sock.can_send and sent < 400:  # bound: 100 MiB
            assert acc.sock.send_text(chunk)
            sent += 1
        assert (acc.sock.can_send, acc.sink.writable_calls) == (False, 0)  # the buffer is full
        peer.discard = True
        peer.transport.resume_reading()
        await acc.sink.wait_until(lambda: acc.sink.writable_calls >= 1)
        assert acc.sock.can_send
        assert acc.sock.send_text("still here")


async def test_server_shutdown_closes_open_sockets_1012() -> None:
    async with direct_server() as server:
        client = await open_socket(server.url + "/direct", ping_interval_s=None)
        heard = Recorder()
        client.attach(heard)
        acc = await server.next()
    # The server has stopped (its task waited for our endpoint to return).
    assert acc.sink.closes == [(1012, "")]
    assert acc.sock.closed
    assert await heard.wait_closed() == (1012, "")
    await asyncio.wait_for(client.wait_closed(), WAIT_S)


# ---------------------------------------------------------------------- our own handshake


async def _raw_exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` on a fresh TCP connection; what the server answers until it closes."""
    wsuri = parse_uri(url)
    reader, writer = await asyncio.open_connection(wsuri.host, wsuri.port)
    try:
        writer.write(request)
        async with asyncio.timeout(WAIT_S):
            return await reader.read()
    finally:
        writer.close()


async def test_an_upgrade_without_a_key_gets_websockets_own_400(server: DirectServer) -> None:
    host = parse_uri(server.url).host
    answer = await _raw_exchange(
        server.url,
        f"GET /direct HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert server.accepted.empty()  # the app never ran


async def test_the_socket_counts_in_uvicorns_connections_while_open(server: DirectServer) -> None:
    assert server.running is not None
    connections = server.running.server.server_state.connections
    client = await open_socket(server.url + "/direct", ping_interval_s=None)
    client.attach(Recorder())
    acc = await server.next()
    assert acc.sock in connections  # what the edge counts for max_connections
    client.close()
    await asyncio.wait_for(acc.sock.wait_closed(), WAIT_S)
    await asyncio.wait_for(client.wait_closed(), WAIT_S)
    assert acc.sock not in connections


@pytest.fixture
def asgi_edge_app() -> Starlette:
    async def deny(ws: WebSocket) -> None:
        await ws.send_denial_response(PlainTextResponse("no thanks", status_code=418))

    async def crash(ws: WebSocket) -> None:
        raise RuntimeError("the endpoint fails before the accept")

    async def accept_and_return(ws: WebSocket) -> None:
        await ws.accept(subprotocol="relay.v1", headers=[(b"x-extra", b"1")])

    return Starlette(
        routes=[
            WebSocketRoute("/deny", deny),
            WebSocketRoute("/crash", crash),
            WebSocketRoute("/accept", accept_and_return),
        ]
    )


async def test_a_denial_response_goes_out_as_the_apps_http_response(
    asgi_edge_app: Starlette,
) -> None:
    async with running_server(asgi_edge_app) as running:
        with pytest.raises(InvalidStatus) as err:
            await open_socket(running.ws_url + "/deny")
    assert err.value.response.status_code == 418
    assert bytes(err.value.response.body or b"") == b"no thanks"


async def test_an_endpoint_failing_before_the_accept_is_a_500(
    asgi_edge_app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(asgi_edge_app) as running:
        with pytest.raises(InvalidStatus) as err:
            await open_socket(running.ws_url + "/crash")
    assert err.value.response.status_code == 500
    assert any("Exception in ASGI application" in r.getMessage() for r in caplog.records)
    caplog.clear()  # (logged on purpose: not an event loop error)


async def test_the_accept_carries_the_subprotocol_and_headers_and_returning_closes(
    asgi_edge_app: Starlette,
) -> None:
    async with (
        running_server(asgi_edge_app) as running,
        connect(running.ws_url + "/accept", subprotocols=[Subprotocol("relay.v1")]) as ws,
    ):
        assert ws.subprotocol == "relay.v1"
        assert ws.response is not None
        assert ws.response.headers["x-extra"] == "1"
        with pytest.raises(ConnectionClosed):  # the endpoint returned: the server hangs up
            await asyncio.wait_for(ws.recv(), WAIT_S)
