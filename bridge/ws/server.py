"""uvicorn's sans-I/O WebSocket protocol, plus a way out of ASGI for hot sockets.

Every server we run uses this class (``bridge.asgi.uvicorn_config``).  An ASGI app sees
an ordinary WebSocket; a scope extension ``"bridge.direct"`` carries the protocol
object.  An endpoint that wants the fast path accepts the socket the ASGI way (so
Starlette routing, the signature check and the handshake headers stay as they are),
then calls :func:`direct_socket` and :meth:`~bridge.ws.socket.DirectSocket.attach`:
from then on messages go straight to its sink and sends are written at once, with no
ASGI queue, no pause/resume of reading per message and no task wake-up.  The endpoint's
coroutine stays alive for the socket's lifetime (uvicorn closes the transport when it
returns), typically awaiting :meth:`~bridge.ws.socket.DirectSocket.wait_closed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame

from bridge.ws.frames import RAW, TEXT
from bridge.ws.socket import ABNORMAL, NO_STATUS, DirectSocket, MessageSink

EXTENSION = "bridge.direct"


def direct_socket(scope: MutableMapping[str, Any]) -> DirectSocket | None:
    """The accepted socket behind an ASGI WebSocket scope, if the server offers it."""
    ext = scope.get("extensions") or {}
    entry = ext.get(EXTENSION)
    if not isinstance(entry, dict):
        return None
    sock = entry.get("socket")
    if not isinstance(sock, DirectWebSocketProtocol) or not sock.handshake_complete:
        return None
    return sock


class DirectWebSocketProtocol(WebSocketsSansIOProtocol, DirectSocket):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ws = self.conn
        self._transport = None
        self._init_direct()
        self._fast_decided = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._transport = cast(asyncio.Transport, transport)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:  # the app's task has not run yet
            self.scope["extensions"][EXTENSION] = {"socket": self}

    # ------------------------------------------------------------------ direct mode

    def attach(self, sink: MessageSink) -> None:
        # Whatever uvicorn queued for the ASGI app before now is the sink's, in order.
        while not self.queue.empty():
            event = self.queue.get_nowait()
            if event["type"] == "websocket.receive":
                text = event.get("text")
                if text is not None:
                    self._early.append((True, text.encode()))
                else:
                    self._early.append((False, event.get("bytes") or b""))
            elif event["type"] == "websocket.disconnect":
                self._notify_closed(event.get("code", NO_STATUS), event.get("reason") or "")
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        super().attach(sink)

    def send_receive_event_to_app(self) -> None:
        if self._sink is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        self._deliver(self.curr_msg_data_type == "text", data)

    def _is_closing(self) -> bool:
        return self.close_sent or self.disconnected or DirectSocket._is_closing(self)

    def _we_closed(self) -> bool:
        return self.close_sent or self._close_sent

    def _after_close_sent(self) -> None:
        # As uvicorn does for an ASGI close: keep reading for the peer's answer, bounded.
        self.close_sent = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        # abort, not close: close() waits for unsent data, forever if the peer reads
        # nothing (a stalled Twilio side), holding the socket and its buffers.
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)

    # ------------------------------------------------------------------ lifecycle

    def data_received(self, data: bytes) -> None:
        splitter = self._splitter
        if splitter is None and not self._fast_decided and self._accepted():
            # The first read after the 101: the library holds no partial frame (a client
            # may not send before the 101), so the fast path starts at a frame boundary.
            self._fast_decided = True
            if not self.conn.reader.buffer:
                self._go_fast(client=False)
                splitter = self._splitter
        if splitter is None:
            self._library_data(data)
            return
        for kind, payload in splitter.feed(data):
            if kind == RAW:  # control frames, fragments, faults: the library
                self._library_data(payload)
                if self.conn.parser_exc is not None:
                    splitter.passthrough = True
                    return
            elif self._sink is not None:
                self._deliver(kind == TEXT, payload)
            else:  # not attached (yet): the ASGI app's queue, as uvicorn would
                self.curr_msg_data_type = "text" if kind == TEXT else "bytes"
                self.frames = [payload]
                self.send_receive_event_to_app()

    def _accepted(self) -> bool:
        return self.handshake_complete and not self.close_sent and self.initial_response is None

    def _library_data(self, data: bytes) -> None:
        # uvicorn checks ``parser_exc`` first and drops the frames that came before the
        # bad one in the same read; deliver those, then fail.
        conn = self.conn
        conn.receive_data(data)
        self.handle_events()
        if conn.parser_exc is not None:
            self.handle_parser_exception()

    def handle_parser_exception(self) -> None:
        # A bad frame, a message over max_size or invalid UTF-8: the socket closes with
        # the code we sent (1002/1009/1007), and the sink hears that code, not 1006.
        super().handle_parser_exception()
        sent = self.conn.close_sent
        if sent is not None:
            self._notify_closed(sent.code, sent.reason)

    def shutdown(self) -> None:
        # The server is stopping: uvicorn sends 1012 (service restart) on open sockets.
        going_away = self.handshake_complete and not self.close_sent and not self.disconnected
        super().shutdown()
        if going_away:
            self._notify_closed(1012, "")

    def handle_close(self, event: Frame) -> None:
        rcvd = self.conn.close_rcvd
        super().handle_close(event)
        if rcvd is not None:
            self._notify_closed(rcvd.code, rcvd.reason)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        rcvd = self.conn.close_rcvd
        if rcvd is not None:
            self._closed(rcvd.code, rcvd.reason)
        else:
            self._closed(ABNORMAL, "")

    def pause_writing(self) -> None:
        super().pause_writing()
        self._set_writable(False)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._set_writable(True)
