"""Opening a WebSocket as a :class:`~bridge.ws.socket.DirectSocket` (client side).

The handshake, framing, masking, UTF-8 checks and the closing handshake are
``websockets``' sans-I/O :class:`~websockets.client.ClientProtocol`; this module is the
asyncio adapter, written as a plain :class:`asyncio.Protocol` so that a received message
is one synchronous call into the sink and a send is one ``transport.write``.

Errors while opening are the ``websockets`` ones (``InvalidURI``, ``InvalidStatus``,
``InvalidHandshake``), ``OSError`` and ``TimeoutError``; callers translate them.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import struct
from collections.abc import Iterable
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from bridge.ws.frames import RAW, TEXT, sent_close
from bridge.ws.proxy import open_tunnel
from bridge.ws.socket import ABNORMAL, NO_STATUS, DirectSocket

CLOSE_TIMEOUT_S = 2.0  # then TCP is aborted: a peer that stopped reading cannot hold the socket


class ClientSocket(asyncio.Protocol, DirectSocket):
    def __init__(
        self,
        ws: ClientProtocol,
        *,
        max_size: int | None = 1 << 20,
        ping_interval_s: float | None,
        ping_timeout_s: float | None,
    ) -> None:
        self._ws = ws
        self._transport = None
        self._init_direct()
        self._loop = asyncio.get_running_loop()
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._ping_interval = ping_interval_s
        self._ping_timeout = ping_timeout_s
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._handshaking = True
        self._response = b""
        self._max_size = max_size  # what the library was given: the fast path's limit too
        self._extensions = False  # the server's 101 named extensions (we offer none)
        self._peer_close: Close | None = None

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, hence the cast)
        self._transport = cast(asyncio.Transport, transport)
        self._flush()  # the handshake request, queued by ``open_socket``

    def data_received(self, data: bytes) -> None:
        splitter = self._splitter
        if splitter is not None:  # the common case: whole data frames, straight to the sink
            ws, sink = self._ws, self._sink
            for kind, payload in splitter.feed(data):
                if kind == TEXT and sink is not None and not self._close_sent:
                    try:
                        text = payload.decode()
                    except UnicodeDecodeError:
                        self._deliver(True, payload)  # fails the socket with 1007
                        continue
                    sink.on_text(text)
                    continue
                if kind != RAW:
                    self._deliver(kind == TEXT, payload)  # (dropped once we are closing)
                    continue
                ws.receive_data(payload)  # control frames, fragments, faults: the library
                self._process()
                if ws.state is not State.OPEN:
                    splitter.passthrough = True  # closing: the library decides from here
            return
        if self._handshaking:
            self._handshake_data(data)
            return
        self._ws.receive_data(data)
        self._process()

    def _handshake_data(self, data: bytes) -> None:
        # Feed the library the HTTP response and nothing after it, so that frames that
        # came in the same read start the fast path at a frame boundary.
        self._response += data
        end = self._response.find(b"\r\n\r\n")
        if end < 0:
            self._ws.receive_data(data)
            self._process()
            return
        cut = end + 4 - (len(self._response) - len(data))  # header bytes within `data`
        self._handshaking = False
        self._response = b""
        self._ws.receive_data(data[:cut])
        self._process()
        rest = data[cut:]
        if self._opened.done() and not self._opened.exception() and not self._extensions:
            self._go_fast(client=True, max_size=self._max_size)
        if rest:
            self.data_received(rest)

    def eof_received(self) -> bool:
        self._ws.receive_eof()
        self._process()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        if not self._opened.done():
            self._opened.set_exception(exc or ConnectionError("connection closed during handshake"))
        rcvd = self._peer_close
        if rcvd is not None:
            self._closed(rcvd.code, rcvd.reason)
        else:
            self._closed(ABNORMAL, "")

    def pause_writing(self) -> None:
        self._set_writable(False)

    def resume_writing(self) -> None:
        self._set_writable(True)

    # ------------------------------------------------------------------ events

    def _process(self) -> None:
        ws = self._ws
        for event in ws.events_received():
            if isinstance(event, Response):
                self._extensions = "Sec-WebSocket-Extensions" in event.headers
                self._handshake_done()
            elif isinstance(event, Frame) and not self._handle_frame(event):
                op = event.opcode
                if op is Opcode.PONG:
                    if self._ping_payload is not None and bytes(event.data) == self._ping_payload:
                        self._ping_payload = None
                        if self._pong_timer is not None:
                            self._pong_timer.cancel()
                            self._pong_timer = None
                        self._schedule_ping()
                elif op is Opcode.CLOSE:
                    rcvd = Close.parse(event.data) if event.data else Close(NO_STATUS, "")
                    self._peer_close = rcvd
                    self._notify_closed(rcvd.code, rcvd.reason)
        chunks = ws.data_to_send()  # pongs, the close answer, EOF: whatever the protocol queued
        failed = (
            self._opened.done()
            and (ws.state is State.CLOSING or ws.state is State.CLOSED)
            and not self._close_sent
            and self._peer_close is None
        )
        self._write(chunks)
        if failed:
            # The library failed the connection (invalid UTF-8, too big, protocol error,
            # EOF): the sink hears the code it sent (1006 if none), after the messages
            # that came before the fault.
            self._close_sent = True
            code, reason = sent_close(chunks, masked=True) or (ABNORMAL, "")
            self._notify_closed(code, reason)
        elif ws.handshake_exc is not None and not self._opened.done():
            self._handshake_done()  # a reply that is not HTTP: no Response event comes
        if ws.close_expected() and self._close_timer is None and self._transport is not None:
            # The server ends TCP after the closing handshake; do it ourselves if it won't.
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT_S, self._transport.abort)

    def _handshake_done(self) -> None:
        if self._opened.done():
            return
        exc = self._ws.handshake_exc
        if exc is not None:
            self._opened.set_exception(exc)
            if self._transport is not None:
                self._transport.close()
            return
        self._opened.set_result(None)
        self._schedule_ping()

    # ------------------------------------------------------------------ keepalive

    def _schedule_ping(self) -> None:
        if self._ping_interval is not None and self._ws.state is State.OPEN:
            self._ping_timer = self._loop.call_later(self._ping_interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self._is_closing() or self._ws.state is not State.OPEN:
            return
        self._ping_payload = struct.pack("!I", int.from_bytes(os.urandom(4), "big"))
        self._ws.send_ping(self._ping_payload)
        self._flush()
        if self._ping_timeout is not None:
            self._pong_timer = self._loop.call_later(self._ping_timeout, self._ping_lost)
        else:
            self._schedule_ping()

    def _ping_lost(self) -> None:
        self._pong_timer = None
        if self._ws.state is State.OPEN:
            self._ws.fail(1011, "keepalive ping timeout")
            self._flush()
            self._notify_closed(1011, "keepalive ping timeout")
        if self._transport is not None:
            self._transport.close()

    def _stop_timers(self) -> None:
        for timer in (self._ping_timer, self._pong_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_timer = self._close_timer = None

    def _after_close_sent(self) -> None:
        if self._close_timer is None and self._transport is not None:
            # Bounded wait for the server's close frame and its end of TCP.
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT_S, self._transport.abort)


async def open_socket(
    url: str,
    *,
    open_timeout_s: float = 10.0,
    max_size: int | None = 1 << 20,
    user_agent: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    ping_interval_s: float | None = 20.0,
    ping_timeout_s: float | None = 20.0,
    ssl_context: ssl.SSLContext | None = None,
    use_proxy: bool = False,
) -> ClientSocket:
    """Connect and complete the handshake; the socket buffers messages until attached.

    ``use_proxy``: go through the HTTP(S) proxy the environment names for this URL
    (``wss_proxy``/``https_proxy``/``http_proxy``, minus ``no_proxy``; websockets'
    ``get_proxy``), with a CONNECT tunnel and TLS to the server inside it.  SOCKS proxies
    are refused with :class:`~websockets.exceptions.ProxyError`.
    """
    wsuri = parse_uri(url)
    ws = ClientProtocol(wsuri, max_size=max_size)
    request = ws.connect()
    if user_agent is not None:
        request.headers["User-Agent"] = user_agent
    for name, value in headers:
        request.headers[name] = value
    ws.send_request(request)
    loop = asyncio.get_running_loop()
    sock: ClientSocket | None = None

    def factory() -> ClientSocket:
        nonlocal sock
        sock = ClientSocket(
            ws,
            max_size=max_size,
            ping_interval_s=ping_interval_s,
            ping_timeout_s=ping_timeout_s,
        )
        return sock

    tls: ssl.SSLContext | None = None
    if wsuri.secure:
        tls = ssl_context or ssl.create_default_context()
    proxy = get_proxy(wsuri) if use_proxy else None
    tunnel: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(open_timeout_s):
            if proxy is None:
                await loop.create_connection(
                    factory,
                    wsuri.host,
                    wsuri.port,
                    ssl=tls,
                    server_hostname=wsuri.host if tls is not None else None,
                )
            else:
                tunnel = await open_tunnel(proxy, wsuri, user_agent)
                transport = tunnel
                factory()
                assert sock is not None
                tunnel.set_protocol(sock)
                if tls is not None:
                    started = await loop.start_tls(tunnel, sock, tls, server_hostname=wsuri.host)
                    assert started is not None
                    transport = started
                sock.connection_made(transport)
            assert sock is not None
            await sock._opened
    except BaseException:
        if sock is not None and sock._transport is not None:
            sock._transport.abort()
        elif tunnel is not None:
            tunnel.abort()
        raise
    if ws.handshake_exc is not None:  # pragma: no cover - _opened raised it already
        raise InvalidHandshake(str(ws.handshake_exc))
    return sock
