"""RFC 6455 framing for the relay's common case: whole, unfragmented data frames.

``websockets``' sans-I/O protocol is the authority on the WebSocket protocol here: the
handshake, control frames, fragmentation, closing and every error.  What it costs is a
generator-driven parser and a dataclass per frame (~7 µs for a receive and a send),
which the relay pays 200 times per call-second.  This module does the two things that
dominate, in a few µs, and hands everything else to the library:

* :class:`FrameSplitter` cuts a received byte stream into whole frames.  A common frame
  (FIN data frame, no RSV bits, masked exactly as this side requires, within
  ``max_size``, outside a fragmented message) comes out as ``(TEXT|BINARY, payload)``,
  unmasked by websockets' C ``apply_mask``.  Any other well-formed frame (ping, pong,
  close, fragments) comes out whole as ``(RAW, frame_bytes)`` for the library, which is
  thereby always fed whole frames and stays at a frame boundary.  Anything malformed
  or oversized turns the splitter into a pass-through from that byte on: the library
  sees exactly what the peer sent and fails the connection as it would have.  So does
  a close frame: the library discards what a peer sends after it, and so nothing
  after it comes out as a message.
* :func:`text_frame` serializes one text frame (client side: masked, with a key from a
  pool filled by ``os.urandom``, as RFC 6455 §5.3 asks of a strong entropy source).

Used only on connections without extensions: a peer that negotiated permessage-deflate
(our server accepts it when a client asks, unless ``ws_per_message_deflate`` is off)
stays on the library's path.
"""

from __future__ import annotations

import os
import struct

from websockets.frames import Close

try:  # the C build of websockets.utils.apply_mask (public): same function, ~10x faster
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships in websockets' wheels
    from websockets.utils import apply_mask

RAW = 0  # a frame (or, after a fault, the rest of the stream) for the library
TEXT = 1
BINARY = 2
_CLOSE = 8
_OPCODES = frozenset((0, 1, 2, 8, 9, 10))  # continuation, text, binary, close, ping, pong
_MASK_POOL = 4096  # mask keys drawn from one os.urandom call: 1024 frames per syscall


class FrameSplitter:
    """Cuts whole frames out of one direction's byte stream (see the module's docstring).

    ``max_size`` is the library's limit on a message (and on each frame of it), and
    ``current_size`` the bytes of a fragmented message already read when the splitter
    starts inside one (our sockets start it at a message boundary: None).
    """

    def __init__(
        self, *, masked: bool, max_size: int | None, current_size: int | None = None
    ) -> None:
        self._mask_bit = 0x80 if masked else 0  # a server's peer must mask, a client's not
        self._max = max_size if max_size is not None else 1 << 63
        self._size = current_size  # as the library's: None outside a fragmented message
        self._room = self._max - (current_size or 0)  # the longest payload it accepts now
        self._buf = bytearray()  # the start of a frame still arriving
        self.passthrough = False  # after a malformed frame or a close: all to the library

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self.passthrough:
            return [(RAW, data)] if data else []
        buf: bytes | bytearray
        if self._buf:
            self._buf += data
            buf = self._buf
        else:
            buf = data
        out: list[tuple[int, bytes]] = []
        n, pos = len(buf), 0
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            op = b0 & 0x0F
            if b0 & 0x70 or b1 & 0x80 != self._mask_bit or op not in _OPCODES:
                # websockets fails on these two bytes (RSV bits: once the frame is read):
                # hand them over now, not once a longer length field has arrived.
                return self._hand_over(out, buf, pos)
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif length == 127:
                if n - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
                head = 10
            if length > self._room:  # websockets' PayloadTooBig, raised on the header
                return self._hand_over(out, buf, pos)
            if self._mask_bit:
                head += 4
            size = self._size  # the library's, once this frame is whole
            if op in (TEXT, BINARY):
                if size is not None:
                    kind = RAW  # a new message inside a fragmented one: the library's error
                elif b0 & 0x80:
                    kind = op
                else:
                    kind, size = RAW, length
            elif op == 0:
                kind = RAW  # (a continuation without a start: the library's error)
                if size is not None:
                    size = None if b0 & 0x80 else size + length
            elif b0 & 0x80 and length <= 125:  # close, ping, pong
                kind = RAW
            else:
                return self._hand_over(out, buf, pos)
            end = pos + head + length
            if end > n:
                break
            if kind == RAW:
                self._size = size
                self._room = self._max if size is None else self._max - size
                out.append((RAW, bytes(buf[pos:end])))
                if op == _CLOSE:  # websockets discards what follows a close: it decides
                    return self._hand_over(out, buf, end)
            elif self._mask_bit:
                out.append(
                    (kind, apply_mask(buf[pos + head : end], buf[pos + head - 4 : pos + head]))
                )
            else:
                out.append((kind, bytes(buf[pos + head : end])))
            pos = end
        if buf is self._buf:
            del self._buf[:pos]
        elif pos < n:
            self._buf = bytearray(buf[pos:])
        return out

    def _hand_over(
        self, out: list[tuple[int, bytes]], buf: bytes | bytearray, pos: int
    ) -> list[tuple[int, bytes]]:
        """From ``pos`` on, the library gets the peer's bytes as they are."""
        self.passthrough = True
        if pos < len(buf):
            out.append((RAW, bytes(buf[pos:])))
        self._buf = bytearray()
        return out


def sent_close(chunks: list[bytes], *, masked: bool) -> tuple[int, str] | None:
    """The code and reason of the close frame among bytes the library queued to send.

    How a connection the library failed (a bad frame, a message too big) learns which
    code it sent, from the wire format rather than the library's internals.  ``masked``:
    the frames are a client's.  None if there is no close frame.
    """
    data = b"".join(chunks)
    pos, n = 0, len(data)
    while n - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        length, head = b1 & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        key = data[pos + head : pos + head + 4] if masked else b""
        start = pos + head + len(key)
        end = start + length
        if end > n:
            return None
        if b0 & 0x0F == _CLOSE:
            payload = data[start:end]
            if key:
                payload = apply_mask(payload, key)
            if not payload:
                return (1005, "")
            close = Close.parse(payload)
            return (close.code, close.reason)
        pos = end
    return None


class MaskKeys:
    """Four-byte masking keys from a pool refilled by ``os.urandom``."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def take(self) -> bytes:
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(_MASK_POOL), 0
        key = self._pool[self._at : self._at + 4]
        self._at += 4
        return key


def text_frame(payload: bytes, mask: bytes | None = None) -> bytes:
    """One FIN text frame carrying ``payload`` (UTF-8), masked when ``mask`` is given."""
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((0x81, n | bit))
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126 | bit, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127 | bit, n)
    if mask is None:
        return head + payload
    return head + mask + apply_mask(payload, mask)
