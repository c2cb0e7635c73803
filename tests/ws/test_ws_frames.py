"""bridge.ws.frames against websockets' own framing, without sockets.

The splitter is checked differentially: a byte stream of frames (well-formed, fragmented,
control, malformed) goes once through websockets' sans-I/O ``Protocol`` alone and once
through the splitter as the socket adapters use it (whole data frames kept, everything
else fed to a second ``Protocol``), cut at arbitrary points.  Both must deliver the same
messages, control frames and replies, and fail with the same close code.
"""

from __future__ import annotations

import itertools
import os
import struct
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from bridge.ws.client import ClientSocket
from bridge.ws.frames import BINARY, RAW, TEXT, FrameSplitter, MaskKeys, sent_close, text_frame
from tests.ws.peers import Recorder

SIDES = [Side.SERVER, Side.CLIENT]  # the end reading the stream: servers read masked frames

DIFF = settings(
    max_examples=int(os.environ.get("BRIDGE_FUZZ_EXAMPLES", "250")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def parse_frames(data: bytes, *, mask: bool) -> list[Frame]:
    """Every whole frame in ``data``, parsed by websockets (as its own tests drive it)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames: list[Frame] = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=mask, max_size=None, extensions=[])
        try:
            next(parser)
        except StopIteration as done:
            frames.append(done.value)
        else:  # pragma: no cover - a truncated frame: the reader is at EOF
            raise AssertionError("a frame was cut short")
    return frames


# ---------------------------------------------------------------------- text_frame


@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_is_websockets_serialization(n: int) -> None:
    payload = bytes(i % 251 for i in range(n))
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame(payload) == expected


@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536, 70000])
def test_masked_text_frame_parses_back(n: int) -> None:
    payload = bytes(i % 251 for i in range(n))
    data = text_frame(payload, b"\x12\x34\xab\xcd")
    (frame,) = parse_frames(data, mask=True)
    assert (frame.opcode, frame.fin, bytes(frame.data)) == (Opcode.TEXT, True, payload)
    if n >= 4:
        assert payload[:4] not in data  # the payload went out masked


# ---------------------------------------------------------------------- MaskKeys


def test_mask_keys_are_four_bytes_from_a_pool_refilled_after_1024() -> None:
    keys = MaskKeys()
    first = [keys.take() for _ in range(1024)]
    pool = keys._pool
    assert all(len(k) == 4 for k in first)
    assert b"".join(first) == pool  # one os.urandom call gave all 1024
    assert len(set(first)) > 1
    more = keys.take()
    assert keys._pool is not pool and len(more) == 4  # the 1025th came from a new pool
    assert more == keys._pool[:4]


# ---------------------------------------------------------------------- splitter examples


def frame_bytes(
    op: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    width: int = 0,
) -> bytes:
    """A frame as a peer may put it on the wire, malformed ones included.

    ``width``: 0 the shortest length encoding, 2 or 8 a 16- or 64-bit length field.
    """
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    bit = 0x80 if mask is not None else 0
    if width == 8 or n >= 65536:
        head = struct.pack("!BBQ", b0, 127 | bit, n)
    elif width == 2 or n >= 126:
        head = struct.pack("!BBH", b0, 126 | bit, n)
    else:
        head = bytes((b0, n | bit))
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


KEY = b"\x01\x02\x03\x04"


def test_whole_data_frames_come_out_unmasked_and_the_rest_whole() -> None:
    ping = frame_bytes(9, b"p", mask=KEY)
    start = frame_bytes(1, b"fr", fin=False, mask=KEY)
    cont = frame_bytes(0, b"ag", mask=KEY)
    stream = (
        frame_bytes(1, b"hello", mask=KEY)
        + ping
        + frame_bytes(2, b"\x00" * 300, mask=KEY)
        + start
        + frame_bytes(1, b"new message inside a fragmented one", mask=KEY)
    )
    splitter = FrameSplitter(masked=True, max_size=1000)
    got = [item for i in range(len(stream)) for item in splitter.feed(stream[i : i + 1])]
    assert got[:4] == [(TEXT, b"hello"), (RAW, ping), (BINARY, b"\x00" * 300), (RAW, start)]
    assert got[4][0] == RAW  # the library's protocol error, not a message
    assert splitter.feed(cont) == [(RAW, cont)]
    assert splitter.feed(frame_bytes(1, b"after", mask=KEY)) == [(TEXT, b"after")]


@pytest.mark.parametrize(
    "bad",
    [
        frame_bytes(1, b"rsv", rsv=4, mask=KEY),
        frame_bytes(1, b"unmasked"),
        frame_bytes(1, b"x" * 101, mask=KEY),  # over max_size
        frame_bytes(9, b"x" * 126, mask=KEY),  # control frame over 125 bytes
        frame_bytes(9, b"ping", fin=False, mask=KEY),
        frame_bytes(3, b"reserved opcode", mask=KEY),
    ],
)
def test_a_malformed_frame_turns_the_splitter_into_a_pass_through(bad: bytes) -> None:
    splitter = FrameSplitter(masked=True, max_size=100)
    good = frame_bytes(1, b"ok", mask=KEY)
    after = frame_bytes(1, b"after", mask=KEY)
    assert splitter.feed(good + bad + after[:3]) == [(TEXT, b"ok"), (RAW, bad + after[:3])]
    assert splitter.passthrough
    assert splitter.feed(after[3:]) == [(RAW, after[3:])]  # exactly the peer's bytes


def test_a_bad_frame_start_is_handed_over_before_its_length_is_complete() -> None:
    # websockets fails on the first two bytes (opcode, masking): so must we.
    splitter = FrameSplitter(masked=True, max_size=100)
    assert splitter.feed(b"\x83\xfe") == [(RAW, b"\x83\xfe")]  # reserved opcode
    splitter = FrameSplitter(masked=False, max_size=100)
    assert splitter.feed(b"\x81\xff\x00") == [(RAW, b"\x81\xff\x00")]  # masked to a client


def test_nothing_after_a_close_frame_is_split_out() -> None:
    close = frame_bytes(8, b"\x03\xe8bye", mask=KEY)
    late = frame_bytes(1, b"late", mask=KEY)
    splitter = FrameSplitter(masked=True, max_size=None)
    assert splitter.feed(close + late) == [(RAW, close), (RAW, late)]
    assert splitter.feed(late) == [(RAW, late)]


def test_a_splitter_started_inside_a_fragmented_message_knows_it() -> None:
    # A server's library may have read a fragment a client sent before the 101.
    new = frame_bytes(1, b"new", mask=KEY)
    end = frame_bytes(0, b"end", mask=KEY)
    splitter = FrameSplitter(masked=True, max_size=10, current_size=4)
    assert splitter.feed(new) == [(RAW, new)]  # the library's "expected a continuation frame"
    assert splitter.feed(end + new) == [(RAW, end), (TEXT, b"new")]
    splitter = FrameSplitter(masked=True, max_size=10, current_size=8)
    assert splitter.feed(end) == [(RAW, end)]  # 8 + 3 > 10: the library's "too big"
    assert splitter.passthrough


def test_the_size_of_a_fragmented_message_counts_as_the_librarys_does() -> None:
    splitter = FrameSplitter(masked=False, max_size=10)
    start, part = frame_bytes(1, b"1234", fin=False), frame_bytes(0, b"5678", fin=False)
    assert splitter.feed(start + part) == [(RAW, start), (RAW, part)]
    # 8 bytes so far: a 3-byte continuation is too big from its header on.
    assert splitter.feed(b"\x80\x03") == [(RAW, b"\x80\x03")]


# ---------------------------------------------------------------------- differential


@dataclass
class Stream:
    frames: list[bytes]
    max_size: int | None


def _payload(draw: st.DrawFn, lo: int, hi: int) -> bytes:
    n = draw(st.integers(lo, hi))
    if n <= 32:
        return draw(st.binary(min_size=n, max_size=n))
    seed = draw(st.integers(0, 255))
    return bytes((seed + 7 * i) & 0xFF for i in range(n))


@st.composite
def streams(draw: st.DrawFn, *, client_sends: bool) -> Stream:
    """Frames as a client (masked) or a server (unmasked) sends them, some malformed."""
    max_size = draw(st.sampled_from([None, 40, 130, 300]))
    limit = max_size if max_size is not None else 400
    masked = client_sends

    def key() -> bytes | None:
        return draw(st.binary(min_size=4, max_size=4)) if masked else None

    def width() -> int:
        return draw(st.sampled_from([0, 0, 0, 2, 8]))

    def data(op: int, payload: bytes, fin: bool = True) -> bytes:
        return frame_bytes(op, payload, fin=fin, mask=key(), width=width())

    def control(op: int) -> bytes:
        return frame_bytes(op, _payload(draw, 0, 20), mask=key(), width=width())

    frames: list[bytes] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(
            st.sampled_from(
                ["text", "text", "binary", "fragmented", "ping", "pong", "big", "malformed"]
            )
        )
        if kind in ("text", "binary"):
            frames.append(data(1 if kind == "text" else 2, _payload(draw, 0, 60)))
        elif kind == "big":  # near the limit: 16-bit lengths, sometimes too big
            frames.append(data(draw(st.sampled_from([1, 2])), _payload(draw, limit - 5, limit + 5)))
        elif kind == "fragmented":
            parts = draw(st.integers(1, 4))
            frames.append(data(draw(st.sampled_from([1, 2])), _payload(draw, 0, 30), fin=False))
            for i in range(parts):
                if draw(st.booleans()):
                    frames.append(control(draw(st.sampled_from([9, 10]))))
                frames.append(data(0, _payload(draw, 0, limit // 2), fin=i == parts - 1))
        elif kind in ("ping", "pong"):
            frames.append(control(9 if kind == "ping" else 10))
        else:
            frames.append(draw(malformed(masked=masked, limit=limit)))
    if draw(st.booleans()):
        reason = draw(st.sampled_from([b"", b"\x03\xe8", b"\x0f\xa0bye", b"\x03", b"\x03\xe7"]))
        reason += draw(st.sampled_from([b"", b"\xff"])) if len(reason) >= 2 else b""
        frames.append(frame_bytes(8, reason, mask=key(), width=width()))
        if draw(st.booleans()):  # a peer that goes on after its close
            frames.append(data(1, b"after close"))
            frames.append(control(9))
    return Stream(frames, max_size)


@st.composite
def malformed(draw: st.DrawFn, *, masked: bool, limit: int) -> bytes:
    def key(wrong: bool = False) -> bytes | None:
        if masked != wrong:
            return draw(st.binary(min_size=4, max_size=4))
        return None

    which = draw(
        st.sampled_from(
            [
                "rsv",
                "mask",
                "oversized",
                "long control",
                "fragmented control",
                "cont",
                "interleaved",
                "opcode",
            ]
        )
    )
    if which == "rsv":
        return frame_bytes(
            draw(st.sampled_from([1, 2, 0, 9])), b"r", rsv=draw(st.integers(1, 7)), mask=key()
        )
    if which == "mask":
        return frame_bytes(draw(st.sampled_from([1, 2, 9])), b"m", mask=key(wrong=True))
    if which == "oversized":
        return frame_bytes(draw(st.sampled_from([1, 2, 0])), bytes(limit + 1), mask=key())
    if which == "long control":
        return frame_bytes(draw(st.sampled_from([8, 9, 10])), bytes(126), mask=key())
    if which == "fragmented control":
        return frame_bytes(draw(st.sampled_from([8, 9, 10])), b"c", fin=False, mask=key())
    if which == "cont":  # a continuation without a start
        return frame_bytes(0, b"c", fin=draw(st.booleans()), mask=key())
    if which == "interleaved":  # a new message (or a close) inside a fragmented one
        start = frame_bytes(draw(st.sampled_from([1, 2])), b"s", fin=False, mask=key())
        op = draw(st.sampled_from([1, 2, 8]))
        return start + frame_bytes(op, b"\x03\xe8" if op == 8 else b"n", mask=key())
    return frame_bytes(draw(st.sampled_from([3, 7, 11, 15])), b"o", mask=key())


Item = tuple[str, int, bytes]  # ("message", opcode, payload) or ("frame", opcode, payload)


class Events:
    """What a side hears, in order: whole messages (fragments reassembled), control frames."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self._parts: list[bytes] = []
        self._op = 0

    def message(self, op: int, payload: bytes) -> None:
        self.items.append(("message", op, payload))

    def take(self, protocol: Protocol) -> None:
        for frame in protocol.events_received():
            assert isinstance(frame, Frame)  # a bare Protocol has no handshake events
            op, data = int(frame.opcode), bytes(frame.data)
            if op in (1, 2):
                if frame.fin:
                    self.message(op, data)
                else:
                    self._op, self._parts = op, [data]
            elif op == 0:
                self._parts.append(data)
                if frame.fin:
                    self.message(self._op, b"".join(self._parts))
            else:
                self.items.append(("frame", op, data))


def outcome(protocol: Protocol) -> tuple[object, ...]:
    """The protocol's state after the stream, and what it sent (parsed: masks are random)."""
    sent: list[tuple[int, bytes] | str] = []
    for chunk in protocol.data_to_send():
        if not chunk:
            sent.append("EOF")
            continue
        for frame in parse_frames(chunk, mask=protocol.side is Side.CLIENT):
            sent.append((int(frame.opcode), bytes(frame.data)))
    close_sent = protocol.close_sent
    return (
        protocol.state,
        type(protocol.parser_exc),
        None if close_sent is None else (close_sent.code, close_sent.reason),
        protocol.close_rcvd,
        sent,
    )


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted(p % (len(data) + 1) for p in points), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@pytest.mark.parametrize("side", SIDES, ids=["server", "client"])
@DIFF
@given(data=st.data())
def test_splitter_with_the_library_behaves_as_the_library_alone(
    side: Side, data: st.DataObject
) -> None:
    stream = data.draw(streams(client_sends=side is Side.SERVER), label="stream")
    wire = b"".join(stream.frames)
    if data.draw(st.booleans(), label="truncated"):  # the peer's bytes stop mid-frame
        wire = wire[: data.draw(st.integers(0, len(wire)), label="length")]
    points = data.draw(st.lists(st.integers(0, 1 << 16), max_size=6), label="cuts")

    alone = Protocol(side, state=State.OPEN, max_size=stream.max_size)
    alone.receive_data(wire)
    expected = Events()
    expected.take(alone)

    # The adapters' rule: whole data frames straight to the sink, the rest to the library
    # in order, and nothing more once the library has failed the connection.
    library = Protocol(side, state=State.OPEN, max_size=stream.max_size)
    splitter = FrameSplitter(masked=side is Side.SERVER, max_size=stream.max_size)
    got = Events()
    for chunk in cut(wire, points):
        for kind, payload in splitter.feed(chunk):
            if kind != RAW:
                got.message(kind, payload)
                continue
            library.receive_data(payload)
            got.take(library)
            if library.parser_exc is not None:
                break
        if library.parser_exc is not None:
            break

    assert got.items == expected.items
    assert outcome(library) == outcome(alone)
    sent = alone.close_sent
    event(f"close {sent.code if sent is not None else None}, fault {type(alone.parser_exc)}")


# ---------------------------------------------------------------------- the client's handshake read


def _handshake_bytes() -> tuple[ClientProtocol, bytes]:
    """A client protocol that sent its request, and a server's 101 answer to it."""
    client = ClientProtocol(parse_uri("ws://127.0.0.1/path"), max_size=1 << 20)
    client.send_request(client.connect())
    server = ServerProtocol()
    server.receive_data(b"".join(client.data_to_send()))
    (request,) = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    return client, b"".join(server.data_to_send())


async def test_frames_behind_the_101_in_any_cut_arrive_whole_and_in_order() -> None:
    # The client feeds the library the HTTP response alone, so the fast path starts at a
    # frame boundary wherever the reads happen to cut the response and the first frames.
    frames = [text_frame(b"one"), text_frame(("ü" * 70).encode()), frame_bytes(2, b"\x00\x01")]
    expected: list[str | bytes] = ["one", "ü" * 70, b"\x00\x01"]
    _, response = _handshake_bytes()
    wire = response + b"".join(frames)
    splits = [[p] for p in range(1, len(wire))]
    splits += [[len(response) - 2, len(response) + 3], list(range(1, len(wire)))]
    for points in splits:
        ws, response = _handshake_bytes()
        wire = response + b"".join(frames)
        sock = ClientSocket(ws, ping_interval_s=None, ping_timeout_s=None)
        sink = Recorder()
        sock.attach(sink)
        for chunk in cut(wire, points):
            sock.data_received(chunk)
        assert sock._opened.done() and sock._opened.exception() is None
        assert sock._splitter is not None, points
        assert sink.messages == expected, points
        assert sink.closes == []


@pytest.mark.parametrize("mask", [False, True])
def test_sent_close_finds_the_close_frame_among_what_the_library_queued(mask: bool) -> None:
    before = [
        Frame(Opcode.PONG, b"p").serialize(mask=mask, extensions=[]),
        Frame(Opcode.TEXT, b"x" * 300).serialize(mask=mask, extensions=[]),
    ]
    close = Frame(Opcode.CLOSE, Close(1009, "too big").serialize()).serialize(
        mask=mask, extensions=[]
    )
    assert sent_close([*before, close, b""], masked=mask) == (1009, "too big")
    empty = Frame(Opcode.CLOSE, b"").serialize(mask=mask, extensions=[])
    assert sent_close([empty], masked=mask) == (1005, "")
    assert sent_close(before, masked=mask) is None
    assert sent_close([b""], masked=mask) is None
