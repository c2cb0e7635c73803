"""A WebSocket as callbacks: what the call relay needs and nothing it pays for per frame.

The relay's hot path is a message in on one socket and a message out on another, fifty
times a second per direction per call.  Through ASGI and the ``websockets`` asyncio
layer each of those costs queue hand-offs, task wake-ups, futures and a pause/resume of
reading (~65 µs a message measured); the framing itself (``websockets``' sans-I/O
``Protocol``) costs 3–5 µs.  A :class:`DirectSocket` keeps that framing and drops the
rest: a complete message calls ``sink.on_text`` synchronously from ``data_received``,
and :meth:`DirectSocket.send_texts` frames and writes at once, several messages in one
``write``.

Both ends implement it: :mod:`bridge.ws.server` (the protocol class we give uvicorn, for
the sockets Twilio and bridges open to us) and :mod:`bridge.ws.client` (the sockets we
open).  Both use ``websockets``' sans-I/O protocols through their documented API only;
what the fast path needs beyond it (where a frame starts, the size limit, whether
extensions were negotiated) they keep themselves.

Flow control is the sink's: ``can_send`` turns False when the transport's buffer is
over its high-water mark (the peer reads too slowly) and ``on_writable`` fires when it
drained; a sender keeps its own bounded queue meanwhile (the call session sheds).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol as WsProtocol
from websockets.protocol import State

from bridge.ws.frames import FrameSplitter, MaskKeys, text_frame

OPEN = State.OPEN

NO_STATUS = 1005  # no close frame code: the peer closed without one
ABNORMAL = 1006  # the TCP connection ended without a closing handshake
INTERNAL_ERROR = 1011  # we hit a bug handling the peer's message


class MessageSink(Protocol):
    """Receives one socket's messages.  Called on the event loop, never concurrently."""

    def on_text(self, text: str) -> None: ...

    def on_binary(self, data: bytes) -> None: ...

    def on_writable(self) -> None: ...

    def on_closed(self, code: int, reason: str) -> None:
        """The peer closed (its close frame arrived) or the connection is gone; once."""


class MessageSocket(Protocol):
    """What a user of a socket sees: :class:`DirectSocket` and the ASGI fallback."""

    close_code: int | None
    close_reason: str

    @property
    def can_send(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    def attach(self, sink: MessageSink) -> None: ...

    def send_texts(self, texts: list[str]) -> bool: ...

    def send_text(self, text: str) -> bool: ...

    def close(self, code: int = 1000, reason: str = "") -> None: ...

    async def wait_closed(self) -> None: ...


class DirectSocket:
    """The part both ends share: buffering until a sink attaches, dispatch, sending.

    Subclasses own the transport and the ``websockets`` protocol object ``_ws`` and call
    :meth:`_deliver` for each frame and :meth:`_closed` once when the socket is done.
    """

    _ws: WsProtocol
    _transport: asyncio.Transport | None

    def _init_direct(self) -> None:
        self._sink: MessageSink | None = None
        self._early: list[tuple[bool, bytes]] = []  # messages before attach: (is_text, data)
        self._early_close: tuple[int, str] | None = None
        self._parts: list[
            bytes | bytearray | memoryview
        ] = []  # a fragmented message being reassembled
        self._parts_text = False
        self._writable = True
        self._close_sent = False
        self._notified_close = False
        self._done = asyncio.get_running_loop().create_future()
        # Set once the handshake is done on a connection without extensions: data frames
        # in and text frames out then skip the library's per-frame machinery (frames.py).
        self._splitter: FrameSplitter | None = None
        self._fast_send = False
        self._mask_keys: MaskKeys | None = None  # client side: frames we send are masked
        self.close_code: int | None = None
        self.close_reason = ""

    # ------------------------------------------------------------------ public

    @property
    def can_send(self) -> bool:
        """False while the transport's buffer is full, or once the socket is closing."""
        return self._writable and not self._is_closing()

    @property
    def closed(self) -> bool:
        return self._done.done()

    def attach(self, sink: MessageSink) -> None:
        """Route messages to ``sink``; those that arrived before are delivered now."""
        if self._sink is not None:
            raise RuntimeError("a sink is already attached")
        self._sink = sink
        early, self._early = self._early, []
        for is_text, data in early:
            self._dispatch(is_text, data)
        if self._early_close is not None:
            code, reason = self._early_close
            self._early_close = None
            self._notify_closed(code, reason)

    def send_texts(self, texts: list[str]) -> bool:
        """Frame ``texts`` and write them in one go; False if the socket is closing."""
        ws, transport = self._ws, self._transport
        if (
            self._fast_send
            and ws.state is OPEN  # neither side's close frame is on its way
            and not self._close_sent
            and transport is not None
            and not transport.is_closing()
        ):
            # The library's own frames (a pong) never wait here: every call into it is
            # followed by a flush.  And it never holds half a message of ours: we send
            # whole messages only.
            keys = self._mask_keys
            if keys is None:
                if len(texts) == 1:
                    transport.write(text_frame(texts[0].encode()))
                    return True
                data = b"".join([text_frame(t.encode()) for t in texts])
            else:
                data = b"".join([text_frame(t.encode(), keys.take()) for t in texts])
            transport.write(data)
            return True
        if self._is_closing():
            return False
        for text in texts:
            ws.send_text(text.encode())
        self._flush()
        return True

    def send_text(self, text: str) -> bool:
        return self.send_texts([text])

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (idempotent); :meth:`wait_closed` sees it end."""
        if self._is_closing():
            return
        self._close_sent = True
        self._ws.send_close(code, reason)
        self._flush()
        self._after_close_sent()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._done)

    # ------------------------------------------------------------------ for subclasses

    def _is_closing(self) -> bool:
        t = self._transport
        # The protocol leaves OPEN when either side's close frame is on its way.
        return self._close_sent or t is None or t.is_closing() or self._ws.state is not OPEN

    def _we_closed(self) -> bool:
        return self._close_sent

    def _after_close_sent(self) -> None:
        """Arm whatever ends the TCP connection if the peer never answers the close."""

    def _flush(self) -> None:
        self._write(self._ws.data_to_send())

    def _write(self, chunks: list[bytes]) -> None:
        """Write what the library queued; an empty chunk asks for the end of our side."""
        transport = self._transport
        if transport is None or not chunks:
            return
        if len(chunks) == 1 and chunks[0]:
            transport.write(chunks[0])
            return
        pending: list[bytes] = []
        for chunk in chunks:  # one write for all frames: one syscall, not one each
            if chunk:
                pending.append(chunk)
                continue
            if pending:
                transport.write(b"".join(pending))
                pending = []
            self._eof()
        if pending:
            transport.write(b"".join(pending))

    def _eof(self) -> None:
        """The library's SEND_EOF: half-close (a client; a server closes instead)."""
        transport = self._transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    def _go_fast(self, *, client: bool, max_size: int | None) -> None:
        """Handshake done, nothing of the next frame read yet: take the fast paths.

        Only on a connection without extensions (the caller checks the handshake's
        ``Sec-WebSocket-Extensions``); ``max_size`` is the one the library was given.
        """
        if self._ws.state is not OPEN:
            return
        self._splitter = FrameSplitter(masked=not client, max_size=max_size)
        self._fast_send = True
        self._mask_keys = MaskKeys() if client else None

    def _handle_frame(self, frame: Frame) -> bool:
        """Deliver a data frame; True if it was one (control frames are the caller's)."""
        op = frame.opcode
        if op is Opcode.TEXT or op is Opcode.BINARY:
            if frame.fin:
                self._deliver(op is Opcode.TEXT, frame.data)
            else:
                self._parts = [frame.data]
                self._parts_text = op is Opcode.TEXT
            return True
        if op is Opcode.CONT:
            self._parts.append(frame.data)
            if frame.fin:
                data, self._parts = b"".join(self._parts), []
                self._deliver(self._parts_text, data)
            return True
        return False

    def _deliver(self, is_text: bool, data: bytes | bytearray | memoryview) -> None:
        if self._we_closed():
            return  # we are closing: late messages are not news any more
        if self._sink is None:
            self._early.append((is_text, bytes(data)))
        else:
            self._dispatch(is_text, data)

    def _dispatch(self, is_text: bool, data: bytes | bytearray | memoryview) -> None:
        sink = self._sink
        assert sink is not None
        if is_text:
            try:
                text = bytes(data).decode() if type(data) is memoryview else data.decode()
            except UnicodeDecodeError:
                # websockets' sans-I/O layer checks UTF-8 in close reasons only: text
                # messages are ours to check.  Fail with 1007 and tell the sink now.
                self.close(1007, "invalid UTF-8")
                self._notify_closed(1007, "invalid UTF-8")
                return
            sink.on_text(text)
        else:
            sink.on_binary(bytes(data))

    def _set_writable(self, writable: bool) -> None:
        self._writable = writable
        if writable and self._sink is not None and not self._close_sent:
            self._sink.on_writable()

    def _notify_closed(self, code: int, reason: str) -> None:
        """The peer's close frame came or the connection ended: tell the sink, once."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if self._notified_close:
            return
        if self._sink is None:
            self._early_close = (code, reason)
            return
        self._notified_close = True
        self._sink.on_closed(self.close_code, self.close_reason)

    def _closed(self, code: int, reason: str) -> None:
        """The connection is gone (``connection_lost``)."""
        self._writable = False
        self._notify_closed(code, reason)
        if not self._done.done():
            self._done.set_result(None)
