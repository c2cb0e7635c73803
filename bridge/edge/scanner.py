"""Incremental scanner of HTTP/1.x request framing: bytes in, verdicts out, no I/O.

It runs beside the real parser (uvicorn's) and only measures: where each request's head
ends, how large it is and how many header lines it has, how long its body is
(``Content-Length`` or chunked) and whether it asks to leave HTTP (an upgrade).  It
refuses as soon as a limit is passed, before the offending bytes reach the parser:

* a head over ``max_header_bytes`` or with more than ``max_headers`` lines → 431;
* a declared ``Content-Length`` over ``max_body_bytes`` → 413 at the end of the head,
  before a byte of the body is read; a chunked body → 413 at the chunk-size line that
  would pass the cap;
* framing it cannot measure (a bad ``Content-Length``, ``Transfer-Encoding`` other than
  chunked or together with ``Content-Length``, a malformed chunk) → 400.  The parser
  would refuse these too; refusing here means the two can never disagree on where a
  request ends.

Work per call is linear in the bytes given and bounded by the limits (a head line is
scanned once however it is trickled in).  After an upgrade head the scanner stops:
what follows belongs to another protocol.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

_HEX = frozenset(b"0123456789abcdefABCDEF")
# A chunk-size line ("1f;ext=...") longer than this is not a chunk-size line.
CHUNK_LINE_MAX = 1024
# Chunks one request body may have.  Each costs a few µs of Python to frame, so a body of
# tiny chunks was a CPU attack (64 KiB of 1-byte chunks: ~40 ms in one feed); real
# chunked senders use chunks of kilobytes, and Twilio sends Content-Length.
MAX_CHUNKS = 256
# How much of the request target is kept for log lines.
TARGET_KEPT = 120


class Phase(enum.Enum):
    IDLE = "idle"  # between requests: no byte of the next one yet
    HEAD = "head"  # request line and headers arriving
    BODY = "body"  # the body arriving
    UPGRADED = "upgraded"  # an upgrade request's head is complete: no longer HTTP
    REFUSED = "refused"


class Refusal(enum.Enum):
    """Why a request is refused, with the status the edge answers."""

    HEAD_TOO_LARGE = (431, "headers", "request head too large")
    TOO_MANY_HEADERS = (431, "headers", "too many header lines")
    BODY_TOO_LARGE = (413, "body", "request body too large")
    BAD_FRAMING = (400, "body", "request framing not understood")

    @property
    def status(self) -> int:
        return int(self.value[0])

    @property
    def field(self) -> str:
        return str(self.value[1])

    @property
    def reason(self) -> str:
        return str(self.value[2])


@dataclass(frozen=True)
class ScanLimits:
    max_header_bytes: int
    max_headers: int
    max_body_bytes: int


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


class _Chunk(enum.Enum):
    SIZE = "size"
    DATA = "data"
    DATA_END = "data_end"
    TRAILER = "trailer"


class RequestScanner:
    """One per connection.  :meth:`feed` every byte received, in order."""

    def __init__(self, limits: ScanLimits) -> None:
        self.limits = limits
        self.phase = Phase.IDLE
        self.refusal: Refusal | None = None
        self.requests_started = 0  # requests whose first byte has arrived
        self.requests_done = 0  # requests whose last byte has arrived
        self.method = b""
        self.target = b""  # the current request's target, cut to TARGET_KEPT
        self.upgrade_seen = False  # the current head has an Upgrade header (or is CONNECT)
        self._line = bytearray()  # a line not complete yet
        self._reset_head()

    # ------------------------------------------------------------------ public

    def feed(self, data: bytes) -> Refusal | None:
        """Scan ``data``; the refusal if a limit is passed (then the scanner is done)."""
        if self.phase is Phase.REFUSED:
            return self.refusal
        pos, n = 0, len(data)
        try:
            while pos < n:
                phase = self.phase
                if phase is Phase.IDLE:
                    self._begin_request()
                    self.phase = phase = Phase.HEAD
                if phase is Phase.HEAD:
                    pos = self._head(data, pos)
                elif phase is Phase.BODY:
                    pos = self._body(data, pos)
                else:  # UPGRADED: the rest is another protocol's
                    break
        except _Refused as e:
            self.phase = Phase.REFUSED
            self.refusal = e.refusal
        return self.refusal

    # ------------------------------------------------------------------ head

    def _begin_request(self) -> None:
        self.requests_started += 1
        self._reset_head()

    def _reset_head(self) -> None:
        self.method = b""
        self.target = b""
        self.upgrade_seen = False
        self._line.clear()
        self._head_bytes = 0
        self._headers = 0
        self._request_line = False
        self._content_length: int | None = None
        self._te_last: bytes | None = None  # last Transfer-Encoding coding, lowercased
        self._connection_upgrade = False
        self._upgrade_header = False
        self._chunked = False
        self._chunk = _Chunk.SIZE
        self._remaining = 0  # body bytes (or the current chunk's) still to come
        self._body_bytes = 0
        self._overhead_bytes = 0
        self._chunks = 0

    def _take_line(
        self, data: bytes, pos: int, room: int, too_long: Refusal
    ) -> tuple[bytes | None, int]:
        """The next complete line (CR LF stripped) and where scanning goes on.

        Without a line end everything is kept and None is returned.  More than ``room``
        bytes in the line (its end included) refuses with ``too_long``.
        """
        end = data.find(b"\n", pos)
        if end < 0:
            if len(self._line) + len(data) - pos > room:
                raise _Refused(too_long)
            self._line += data[pos:]
            return None, len(data)
        if len(self._line) + end + 1 - pos > room:
            raise _Refused(too_long)
        if self._line:
            self._line += data[pos:end]
            line = bytes(self._line)
            self._line.clear()
        else:
            line = data[pos:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        return line, end + 1

    def _head(self, data: bytes, pos: int) -> int:
        room = self.limits.max_header_bytes - self._head_bytes
        line, nxt = self._take_line(data, pos, room, Refusal.HEAD_TOO_LARGE)
        self._head_bytes += nxt - pos
        if line is None:
            return nxt
        if not self._request_line:
            if line:  # empty lines before a request line are tolerated (RFC 9112 2.2)
                self._on_request_line(line)
        elif line:
            self._on_header(line)
        else:
            self._head_done()
        return nxt

    def _on_request_line(self, line: bytes) -> None:
        self._request_line = True
        method, _, rest = line.partition(b" ")
        self.method = method[:16]
        self.target = rest.rpartition(b" ")[0][:TARGET_KEPT]
        if method == b"CONNECT":
            self.upgrade_seen = True

    def _on_header(self, line: bytes) -> None:
        self._headers += 1
        if self._headers > self.limits.max_headers:
            raise _Refused(Refusal.TOO_MANY_HEADERS)
        name, colon, value = line.partition(b":")
        if not colon or len(name) > 17:  # longer than every name looked at below
            return
        name = name.lower()
        if name == b"content-length":
            value = value.strip(b" \t")
            if self._content_length is not None or not value.isdigit():
                raise _Refused(Refusal.BAD_FRAMING)  # the parser refuses these too
            # 18 digits always fit; more are over any cap anyway.
            self._content_length = int(value) if len(value) <= 18 else 1 << 62
        elif name == b"transfer-encoding":
            self._te_last = value.rpartition(b",")[2].strip(b" \t").lower()
        elif name == b"connection":
            tokens = (t.strip(b" \t").lower() for t in value.split(b","))
            if b"upgrade" in tokens:
                self._connection_upgrade = True
        elif name == b"upgrade":
            self._upgrade_header = True
            self.upgrade_seen = True

    def _head_done(self) -> None:
        if self.method == b"CONNECT" or (self._upgrade_header and self._connection_upgrade):
            self.phase = Phase.UPGRADED
            return
        if self._te_last is not None:
            if self._content_length is not None or self._te_last != b"chunked":
                raise _Refused(Refusal.BAD_FRAMING)
            self._chunked = True
            self.phase = Phase.BODY
            return
        length = self._content_length or 0
        if length > self.limits.max_body_bytes:
            raise _Refused(Refusal.BODY_TOO_LARGE)
        self._remaining = length
        if length:
            self.phase = Phase.BODY
        else:
            self._request_done()

    def _request_done(self) -> None:
        self.requests_done += 1
        self.phase = Phase.IDLE

    # ------------------------------------------------------------------ body

    def _body(self, data: bytes, pos: int) -> int:
        if not self._chunked:
            take = min(self._remaining, len(data) - pos)
            self._remaining -= take
            if not self._remaining:
                self._request_done()
            return pos + take
        state = self._chunk
        if state is _Chunk.DATA:
            take = min(self._remaining, len(data) - pos)
            self._remaining -= take
            if not self._remaining:
                self._chunk = _Chunk.DATA_END
            return pos + take
        if state is _Chunk.TRAILER:
            room = self.limits.max_header_bytes - self._head_bytes
            line, nxt = self._take_line(data, pos, room, Refusal.HEAD_TOO_LARGE)
            self._head_bytes += nxt - pos
            if line is None:
                return nxt
            if line:
                self._on_trailer()
            else:
                self._request_done()
            return nxt
        # SIZE or DATA_END: a framing line, counted against the body cap as well (a body
        # of 1-byte chunks must not cost 7 times the cap).
        room = self.limits.max_body_bytes - self._overhead_bytes
        if room >= CHUNK_LINE_MAX:
            line, nxt = self._take_line(data, pos, CHUNK_LINE_MAX, Refusal.BAD_FRAMING)
        else:
            line, nxt = self._take_line(data, pos, room, Refusal.BODY_TOO_LARGE)
        self._overhead_bytes += nxt - pos
        if line is None:
            return nxt
        if state is _Chunk.DATA_END:
            if line:
                raise _Refused(Refusal.BAD_FRAMING)
            self._chunk = _Chunk.SIZE
            return nxt
        size = line.partition(b";")[0].strip(b" \t")
        if not 0 < len(size) <= 16 or not _HEX.issuperset(size):
            raise _Refused(Refusal.BAD_FRAMING)
        n = int(size, 16)
        if n == 0:
            self._chunk = _Chunk.TRAILER
            return nxt
        self._body_bytes += n
        if self._body_bytes > self.limits.max_body_bytes:
            raise _Refused(Refusal.BODY_TOO_LARGE)
        self._chunks += 1
        if self._chunks > MAX_CHUNKS:
            raise _Refused(Refusal.BAD_FRAMING)
        self._remaining = n
        self._chunk = _Chunk.DATA
        return nxt

    def _on_trailer(self) -> None:
        self._headers += 1
        if self._headers > self.limits.max_headers:
            raise _Refused(Refusal.TOO_MANY_HEADERS)
