"""Our WebSocket server protocol for uvicorn, and a way out of ASGI for hot sockets.

uvicorn takes the WebSocket protocol class as ``Config(ws=...)`` (the documented
setting; ``bridge.asgi.uvicorn_config`` passes this class).  Its contract: uvicorn
builds one per upgraded connection with ``(config=, server_state=, app_state=)``, calls
``connection_made(transport)`` and ``data_received(<the upgrade request>)``, then points
the transport at it; the instance joins ``server_state.connections`` until the
connection is lost (so the edge counts it, and uvicorn calls its ``shutdown()`` when the
server stops) and its ASGI task joins ``server_state.tasks``.  Nothing else of uvicorn
is used: the handshake, framing and closing are ``websockets``' sans-I/O
:class:`~websockets.server.ServerProtocol`, through its public API.

The app sees an ordinary ASGI WebSocket (routing, the Twilio signature check and the
handshake headers stay where they are); a scope extension ``"bridge.direct"`` carries
this object.  An endpoint that wants the fast path accepts the socket the ASGI way,
then calls :func:`direct_socket` and :meth:`~bridge.ws.socket.DirectSocket.attach`:
from then on messages go straight to its sink and sends are written at once, with no
ASGI queue and no task wake-up.  The endpoint's coroutine stays alive for the socket's
lifetime (the transport is closed when it returns), typically awaiting
:meth:`~bridge.ws.socket.DirectSocket.wait_closed`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import MutableMapping
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

import uvicorn
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from bridge.ws.frames import RAW, TEXT, sent_close
from bridge.ws.socket import ABNORMAL, NO_STATUS, DirectSocket, MessageSink

EXTENSION = "bridge.direct"
SERVICE_RESTART = 1012  # the server is stopping (uvicorn's code for open sockets)
CLOSE_TIMEOUT_S = 10.0  # then TCP is aborted: uvicorn's bound for a close answer
_HEAD_END = b"\r\n\r\n"

logger = logging.getLogger("bridge.ws.server")


def direct_socket(scope: MutableMapping[str, Any]) -> DirectSocket | None:
    """The accepted socket behind an ASGI WebSocket scope, if the server offers it."""
    ext = scope.get("extensions") or {}
    entry = ext.get(EXTENSION)
    if not isinstance(entry, dict):
        return None
    sock = entry.get("socket")
    if not isinstance(sock, DirectWebSocketProtocol) or not sock.accepted:
        return None
    return sock


class _Disconnected(ConnectionResetError):
    """An ASGI send on a connection that is gone (Starlette: WebSocketDisconnect)."""


class DirectWebSocketProtocol(asyncio.Protocol, DirectSocket):
    """One upgraded connection, for uvicorn's ``ws`` setting (see the module's docstring).

    Of ``config`` it reads ``load()``/``loaded``/``loaded_app`` (the app uvicorn serves,
    its middleware included, as every uvicorn protocol does), ``root_path``,
    ``ws_max_size`` and ``ws_per_message_deflate``; of ``server_state`` (uvicorn's
    ``ServerState``) ``connections``, ``tasks`` and ``default_headers``.  It sends no
    keepalive pings (``ws_ping_interval`` is ignored: Twilio and the platform ping
    themselves) and pauses reading while 16 messages wait for an ASGI app that reads
    slower than its peer sends (instead of ``ws_max_queue``).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,  # uvicorn.server.ServerState
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self._app = config.loaded_app
        self._root_path = config.root_path
        self._max_size: int | None = config.ws_max_size
        self._app_state = app_state
        self._connections: set[Any] = server_state.connections
        self._tasks: set[asyncio.Task[None]] = server_state.tasks
        self._default_headers: list[tuple[bytes, bytes]] = server_state.default_headers
        extensions = []
        if config.ws_per_message_deflate:
            extensions = [
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
            ]
        # (its own logger, "websockets.server": quiet below warnings, as bridge.log sets it;
        # at debug it would log request headers, and so the stream token)
        self._ws: ServerProtocol = ServerProtocol(extensions=extensions, max_size=self._max_size)
        self._transport = None
        self._init_direct()
        self._loop = _loop or asyncio.get_running_loop()
        # True once the upgrade request is answered (101 or refused): the edge guard reads
        # it (bridge.edge.protocol) to tell an answered upgrade from a stalled one.
        self.handshake_complete = False
        self.accepted = False  # the 101 went out
        self.close_timeout = CLOSE_TIMEOUT_S
        self._head = b""  # the upgrade request until its end
        self._pending = bytearray()  # what the client sent after it, before our 101
        self._response: Response | None = None  # the 101 we will send if the app accepts
        self._denial: tuple[int, list[tuple[str, str]], bytes] | None = None
        self._scope: dict[str, Any] = {}
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # ASGI receive events
        self._told_app_disconnect = False
        self._read_paused = False
        self._peer_close: Close | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._lost = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, hence the cast)
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def data_received(self, data: bytes) -> None:
        splitter = self._splitter
        if splitter is not None:  # the common case: whole data frames, straight to the sink
            sink = self._sink
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
                    self._deliver(kind == TEXT, payload)
                    continue
                self._library_data(payload)  # control frames, fragments, faults
                if self._ws.state is not State.OPEN:
                    splitter.passthrough = True  # closing: the library decides from here
            return
        if self.accepted:
            self._library_data(data)
        elif not self.handshake_complete and self._response is None:
            self._request_data(data)
        elif not self.handshake_complete:
            self._hold(data)  # frames sent before our 101: kept for after it

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._connections.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self.handshake_complete = True
        close = self._peer_close
        code, reason = (close.code, close.reason) if close is not None else (ABNORMAL, "")
        self._tell_app_disconnect(code, reason)
        self._closed(code, reason)

    def pause_writing(self) -> None:
        self._set_writable(False)

    def resume_writing(self) -> None:
        self._set_writable(True)

    def shutdown(self) -> None:
        """uvicorn calls this on every open connection when the server stops."""
        transport = self._transport
        if transport is None:
            return
        if self.accepted and not self._is_closing():
            self._tell_app_disconnect(SERVICE_RESTART, "")
            self._close_sent = True
            self._ws.send_close(SERVICE_RESTART)
            self._flush()
            self._notify_closed(SERVICE_RESTART, "")
        elif not self.handshake_complete and self._response is not None:
            self._refuse(500, "Internal Server Error")
        transport.close()

    # ------------------------------------------------------------------ the handshake

    def _request_data(self, data: bytes) -> None:
        # Feed the library the request head and nothing after it: what follows is frames,
        # held until the 101 and then read from a frame boundary.
        self._head += data
        end = self._head.find(_HEAD_END)
        if end < 0:
            if len(self._head) > 65536:  # uvicorn hands the whole head at once: not HTTP
                self._abort()
            return
        head, rest = self._head[: end + 4], self._head[end + 4 :]
        self._head = b""
        ws = self._ws
        ws.receive_data(head)
        request = next((e for e in ws.events_received() if isinstance(e, Request)), None)
        if request is None:  # not a request websockets can parse: its own answer, if any
            self.handshake_complete = True
            self._close_sent = True
            self._write(ws.data_to_send())
            if self._transport is not None:
                self._transport.close()
            return
        response = ws.accept(request)
        if response.status_code != 101:  # not a valid upgrade: websockets' own answer
            self._send_response(response)
            return
        self._response = response
        self._scope = self._make_scope(request)
        if rest:
            self._hold(rest)
        self._queue.put_nowait({"type": "websocket.connect"})
        task = self._loop.create_task(self._run_asgi())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _make_scope(self, request: Request) -> dict[str, Any]:
        transport = self._transport
        assert transport is not None
        raw_path, _, query = request.path.partition("?")
        root = self._root_path
        subprotocols: list[str] = []
        for header in request.headers.get_all("Sec-WebSocket-Protocol"):
            subprotocols.extend(token.strip() for token in header.split(","))
        return {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if transport.get_extra_info("sslcontext") else "ws",
            "server": _address(transport.get_extra_info("sockname")),
            "client": _address(transport.get_extra_info("peername")),
            "root_path": root,
            "path": root + unquote(raw_path),
            "raw_path": root.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            # websockets decodes header bytes as latin-1 (17+) or ASCII with surrogate
            # escapes (before): this gives the bytes back either way.
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1", "surrogateescape"))
                for name, value in request.headers.raw_items()
            ],
            "subprotocols": subprotocols,
            "state": self._app_state.copy(),
            "extensions": {"websocket.http.response": {}, EXTENSION: {"socket": self}},
        }

    def _hold(self, data: bytes) -> None:
        self._pending += data
        limit = (self._max_size or 1 << 20) + 14  # one whole frame of the largest message
        if len(self._pending) > limit and not self._read_paused and self._transport is not None:
            self._read_paused = True  # a client flooding before the 101 waits for it
            self._transport.pause_reading()

    def _accept(self, message: MutableMapping[str, Any]) -> None:
        response = self._response
        transport = self._transport
        assert response is not None and transport is not None
        extra = list(self._default_headers) + list(message.get("headers") or [])
        if extra:
            del response.headers["Date"]  # uvicorn's default headers carry their own
        for name, value in extra:
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        subprotocol = message.get("subprotocol")
        if subprotocol:
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
        self._response = None
        self.handshake_complete = self.accepted = True
        self._ws.send_response(response)
        self._flush()
        if "Sec-WebSocket-Extensions" not in response.headers:
            self._go_fast(client=False, max_size=self._max_size)
        held, self._pending = bytes(self._pending), bytearray()
        if self._read_paused and not self._lost:
            self._read_paused = False
            transport.resume_reading()
        if held:
            self.data_received(held)

    def _refuse(self, status: int, body: str) -> None:
        self._send_response(self._ws.reject(status, body))

    def _send_response(self, response: Response) -> None:
        self._response = None
        self.handshake_complete = True
        self._close_sent = True
        self._tell_app_disconnect(ABNORMAL, "")
        self._ws.send_response(response)
        transport = self._transport
        if transport is not None:
            transport.write(b"".join(self._ws.data_to_send()))
            transport.close()

    # ------------------------------------------------------------------ ASGI

    async def _run_asgi(self) -> None:
        try:
            result = await self._app(self._scope, self._receive, self._send)
        except _Disconnected:
            pass
        except BaseException:
            logger.exception("Exception in ASGI application")
            if not self.handshake_complete:
                self._refuse(500, "Internal Server Error")
        else:
            if not self.handshake_complete:
                logger.error("ASGI callable returned without completing handshake.")
                self._refuse(500, "Internal Server Error")
            elif result is not None:
                logger.error("ASGI callable should return None, but returned %r.", result)
        if self._close_timer is None and self._transport is not None:
            self._transport.close()

    async def _receive(self) -> dict[str, Any]:
        message = await self._queue.get()
        if self._read_paused and self.accepted and self._queue.empty() and not self._lost:
            self._read_paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        return message

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if self._lost and kind != "websocket.close":
            raise _Disconnected()
        if not self.handshake_complete:
            if self._denial is not None:
                self._denial_body(message)
            elif kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._refuse(HTTPStatus.FORBIDDEN, "")
            elif kind == "websocket.http.response.start":
                status = message["status"]
                if not 100 <= status < 600:
                    raise RuntimeError(f"Invalid HTTP status code {status!r} in response.")
                headers = [
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in message.get("headers", [])
                ]
                self._denial = (status, headers, b"")
            else:
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.accept' or 'websocket.close', got {kind!r}."
                )
        elif kind == "websocket.send":
            if self._is_closing():
                raise _Disconnected()
            data = message.get("bytes")
            if data is not None:
                self._ws.send_binary(data)
                self._flush()
            else:
                self.send_text(message.get("text") or "")
        elif kind == "websocket.close":
            self.close(message.get("code", 1000), message.get("reason") or "")
        elif not self.accepted:
            return  # refused already: nothing more goes out
        else:
            raise RuntimeError(
                f"Expected ASGI message 'websocket.send' or 'websocket.close', got {kind!r}."
            )

    def _denial_body(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] != "websocket.http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'websocket.http.response.body', got {message['type']!r}."
            )
        assert self._denial is not None
        status, headers, body = self._denial
        body += message.get("body", b"")
        self._denial = (status, headers, body)
        if message.get("more_body", False):
            return
        response_headers = Headers(headers)
        response_headers.setdefault("Date", email.utils.formatdate(usegmt=True))
        response_headers.setdefault("Connection", "close")
        response_headers.setdefault("Content-Length", str(len(body)))
        response_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        self._send_response(Response(status, _phrase(status), response_headers, body))

    def _tell_app_disconnect(self, code: int, reason: str) -> None:
        if not self._told_app_disconnect:
            self._told_app_disconnect = True
            self._queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})

    # ------------------------------------------------------------------ direct mode

    def attach(self, sink: MessageSink) -> None:
        # Whatever was queued for the ASGI app before now is the sink's, in order.
        queue = self._queue
        while not queue.empty():
            event = queue.get_nowait()
            if event["type"] == "websocket.receive":
                text = event.get("text")
                if text is not None:
                    self._early.append((True, text.encode()))
                else:
                    self._early.append((False, event.get("bytes") or b""))
            elif event["type"] == "websocket.disconnect" and self._early_close is None:
                self._early_close = (event.get("code", NO_STATUS), event.get("reason") or "")
        if self._read_paused and not self._lost and self._transport is not None:
            self._read_paused = False
            self._transport.resume_reading()
        super().attach(sink)

    def _deliver(self, is_text: bool, data: bytes | bytearray | memoryview) -> None:
        if self._sink is not None:
            if not self._close_sent:
                self._dispatch(is_text, data)
            return
        if self._close_sent:
            return  # we are closing: late messages are not news any more
        # Not attached (yet), or never: the ASGI app's queue, as any server would.
        if is_text:
            try:
                text = bytes(data).decode()
            except UnicodeDecodeError:
                self.close(1007, "invalid UTF-8")
                self._notify_closed(1007, "invalid UTF-8")
                return
            self._queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self._queue.put_nowait({"type": "websocket.receive", "bytes": bytes(data)})
        if not self._read_paused and self._transport is not None and self._queue.qsize() > 16:
            self._read_paused = True  # the app reads slower than the peer sends
            self._transport.pause_reading()

    def _notify_closed(self, code: int, reason: str) -> None:
        self._tell_app_disconnect(code, reason)
        super()._notify_closed(code, reason)

    def _after_close_sent(self) -> None:
        # Keep reading for the peer's answer, bounded: abort, not close, since close()
        # waits for unsent data, forever if the peer reads nothing (a stalled Twilio
        # side), holding the socket and its buffers.
        transport = self._transport
        if transport is None:
            return
        if self._read_paused and not self._lost:
            self._read_paused = False
            transport.resume_reading()
        if self._close_timer is None:
            self._close_timer = self._loop.call_later(self.close_timeout, transport.abort)

    def _eof(self) -> None:
        # websockets asks a server to end TCP after the closing handshake or a failure.
        if self._transport is not None:
            self._transport.close()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # ------------------------------------------------------------------ the library's path

    def _library_data(self, data: bytes) -> None:
        """Control frames, fragments, extensions and faults: websockets decides."""
        ws = self._ws
        ws.receive_data(data)
        for event in ws.events_received():
            if (
                isinstance(event, Frame)
                and not self._handle_frame(event)
                and event.opcode is Opcode.CLOSE
            ):
                self._peer_close = Close.parse(event.data) if event.data else Close(NO_STATUS, "")
        chunks = ws.data_to_send()  # pongs, the close answer, a failure's close, EOF
        failed = ws.state is not State.OPEN and not self._close_sent and self._peer_close is None
        self._write(chunks)
        close = self._peer_close
        if close is not None:
            self._notify_closed(close.code, close.reason)
        elif failed:
            # A bad frame, a message over max_size: the library failed the connection with
            # a close frame (1002/1009...); the sink and the app hear that code, not 1006.
            self._close_sent = True
            code, reason = sent_close(chunks, masked=False) or (ABNORMAL, "")
            self._notify_closed(code, reason)
            self._after_close_sent()


def _address(value: object) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
