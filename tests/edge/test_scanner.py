"""The request-framing scanner, without sockets: bytes in, verdicts out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.edge.scanner import (
    CHUNK_LINE_MAX,
    MAX_CHUNKS,
    Phase,
    Refusal,
    RequestScanner,
    ScanLimits,
)

LIMITS = ScanLimits(max_header_bytes=1024, max_headers=10, max_body_bytes=100)


def scanner() -> RequestScanner:
    return RequestScanner(LIMITS)


def head(*headers: str, target: str = "/twilio/inbound", method: str = "POST") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: bridge.test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(body: bytes) -> bytes:
    return head(f"Content-Length: {len(body)}") + body


def chunked(*chunks: bytes, trailer: bytes = b"") -> bytes:
    out = head("Transfer-Encoding: chunked")
    for c in chunks:
        out += b"%x\r\n" % len(c) + c + b"\r\n"
    return out + b"0\r\n" + trailer + b"\r\n"


def test_a_get_is_one_request_and_the_scanner_waits_for_the_next() -> None:
    s = scanner()
    assert s.phase is Phase.IDLE
    assert s.feed(head(method="GET", target="/healthz")) is None
    assert (s.phase, s.requests_started, s.requests_done) == (Phase.IDLE, 1, 1)
    assert (s.method, s.target) == (b"GET", b"/healthz")


def test_a_head_arriving_a_byte_at_a_time_is_followed() -> None:
    s = scanner()
    data = post(b"a=1&b=2")
    for i, byte in enumerate(data):
        assert s.feed(bytes([byte])) is None
        if i == 0:
            assert (s.phase, s.requests_started) == (Phase.HEAD, 1)
    assert (s.phase, s.requests_done) == (Phase.IDLE, 1)


def test_a_body_in_progress_is_the_body_phase() -> None:
    s = scanner()
    s.feed(head("Content-Length: 10") + b"12345")
    assert s.phase is Phase.BODY
    s.feed(b"67890" + head(method="GET"))
    assert (s.requests_started, s.requests_done) == (2, 2)


def test_the_head_size_limit_is_inclusive_and_refused_before_the_head_ends() -> None:
    base = head()
    pad = LIMITS.max_header_bytes - len(base) - len("X: \r\n")
    exact = head("X: " + "a" * pad)
    assert len(exact) == LIMITS.max_header_bytes
    assert scanner().feed(exact) is None
    s = scanner()
    assert s.feed(head("X: " + "a" * (pad + 1))) is Refusal.HEAD_TOO_LARGE
    # An endless header line is refused once it passes the limit, not at its end.
    s = scanner()
    assert s.feed(b"GET / HTTP/1.1\r\nX: ") is None
    assert s.feed(b"a" * 2000) is Refusal.HEAD_TOO_LARGE
    assert s.phase is Phase.REFUSED
    assert s.feed(b"\r\n\r\n") is Refusal.HEAD_TOO_LARGE  # stays refused


def test_empty_lines_before_a_request_count_against_the_head() -> None:
    s = scanner()
    assert s.feed(b"\r\n" * 400) is None
    assert s.phase is Phase.HEAD  # a byte arrived: the head deadline runs
    assert s.feed(b"\r\n" * 200) is Refusal.HEAD_TOO_LARGE


def test_header_count() -> None:
    ten = [f"X-{i}: v" for i in range(LIMITS.max_headers - 1)]  # plus Host
    assert scanner().feed(head(*ten)) is None
    assert scanner().feed(head(*ten, "X-more: v")) is Refusal.TOO_MANY_HEADERS


def test_content_length_over_the_cap_is_refused_at_the_end_of_the_head() -> None:
    assert scanner().feed(head("Content-Length: 100") + b"x" * 100) is None
    s = scanner()
    assert s.feed(head("Content-Length: 101")) is Refusal.BODY_TOO_LARGE
    assert scanner().feed(head("Content-Length: " + "9" * 40)) is Refusal.BODY_TOO_LARGE


def test_framing_that_cannot_be_measured_is_refused() -> None:
    bad = [
        head("Content-Length: 5", "Content-Length: 5"),
        head("Content-Length: -1"),
        head("Content-Length: 1,1"),
        head("Content-Length: 5", "Transfer-Encoding: chunked"),
        head("Transfer-Encoding: gzip"),
        head("Transfer-Encoding: chunked, gzip"),
    ]
    for data in bad:
        assert scanner().feed(data) is Refusal.BAD_FRAMING, data


def test_chunked_bodies_are_followed_to_their_end() -> None:
    s = scanner()
    data = chunked(b"a=1", b"&b=2", trailer=b"X-Trailer: t\r\n") + head(method="GET")
    assert s.feed(data) is None
    assert (s.phase, s.requests_done) == (Phase.IDLE, 2)


def test_a_chunked_body_is_refused_at_the_chunk_that_passes_the_cap() -> None:
    s = scanner()
    assert s.feed(head("Transfer-Encoding: chunked") + b"64\r\n" + b"x" * 100 + b"\r\n") is None
    # The size line of the chunk that would pass the cap: refused before its data.
    assert s.feed(b"1\r\n") is Refusal.BODY_TOO_LARGE
    assert scanner().feed(head("Transfer-Encoding: chunked") + b"65\r\n") is (
        Refusal.BODY_TOO_LARGE
    )


def test_chunk_framing_overhead_counts_against_the_cap() -> None:
    s = scanner()
    s.feed(head("Transfer-Encoding: chunked"))
    # Tiny chunks with long extensions: little data, much framing.
    chunk = b"1;ext=" + b"e" * 20 + b"\r\nx\r\n"  # 30 bytes of framing per data byte
    verdicts = [s.feed(chunk) for _ in range(4)]
    assert verdicts == [None, None, None, Refusal.BODY_TOO_LARGE]


def test_a_body_of_too_many_chunks_is_refused_at_the_first_one_too_many() -> None:
    # Each chunk costs Python work to frame: their number is bounded, not only their bytes.
    s = RequestScanner(ScanLimits(1024, 10, 1 << 20))
    assert s.feed(head("Transfer-Encoding: chunked") + b"1\r\nx\r\n" * MAX_CHUNKS) is None
    assert s.feed(b"1\r\nx\r\n") is Refusal.BAD_FRAMING
    ok = RequestScanner(ScanLimits(1024, 10, 1 << 20))
    assert ok.feed(chunked(*[b"x"] * MAX_CHUNKS)) is None
    assert ok.requests_done == 1


def test_malformed_chunks() -> None:
    for tail in [b"zz\r\n", b"\r\n", b"1\r\nxy\r\n", b"1" * 17 + b"\r\n"]:
        assert scanner().feed(head("Transfer-Encoding: chunked") + tail) is Refusal.BAD_FRAMING
    long_line = b"1;" + b"e" * CHUNK_LINE_MAX
    s = RequestScanner(ScanLimits(1024, 10, 1 << 20))
    assert s.feed(head("Transfer-Encoding: chunked") + long_line) is Refusal.BAD_FRAMING


def test_an_upgrade_ends_scanning() -> None:
    s = scanner()
    assert s.feed(b"GET /twilio/media HTTP/1.1\r\nUpgrade: websocket\r\n") is None
    assert s.upgrade_seen and s.phase is Phase.HEAD
    assert s.feed(b"Connection: keep-alive, Upgrade\r\n\r\n") is None
    assert s.phase is Phase.UPGRADED
    assert s.feed(b"\x81\x85" + b"x" * 5000) is None  # a WebSocket frame: not ours
    assert s.phase is Phase.UPGRADED


def test_an_upgrade_header_without_connection_upgrade_is_plain_http() -> None:
    s = scanner()
    assert s.feed(head("Upgrade: websocket", method="GET")) is None
    assert s.phase is Phase.IDLE


def test_connect_is_an_upgrade() -> None:
    s = scanner()
    s.feed(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
    assert s.phase is Phase.UPGRADED


def test_the_target_kept_for_logs_is_bounded() -> None:
    s = scanner()
    s.feed(b"GET /" + b"a" * 900 + b" HTTP/1.1\r\n")
    assert s.target.startswith(b"/aaa") and len(s.target) <= 120


_requests = st.one_of(
    st.binary(max_size=100).map(post),
    st.lists(st.binary(min_size=1, max_size=20), max_size=4).map(lambda cs: chunked(*cs)),
    st.just(head(method="GET", target="/healthz")),
)


@given(st.lists(_requests, min_size=1, max_size=4), st.data())
def test_any_split_of_a_pipeline_gives_the_same_verdicts(
    requests: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(requests)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    s = scanner()
    prev = 0
    for cut in [*cuts, len(stream)]:
        assert s.feed(stream[prev:cut]) is None
        prev = cut
    assert (s.phase, s.requests_started, s.requests_done) == (
        Phase.IDLE,
        len(requests),
        len(requests),
    )


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_any_bytes_give_a_verdict_never_an_error(chunks: list[bytes]) -> None:
    s = scanner()
    for c in chunks:
        verdict = s.feed(c)
        assert verdict is None or isinstance(verdict, Refusal)
        if verdict is not None:
            assert s.phase is Phase.REFUSED
    assert s.requests_done <= s.requests_started


@given(st.binary(min_size=1, max_size=3000))
def test_a_head_never_grows_past_the_limit_unrefused(garbage: bytes) -> None:
    s = scanner()
    s.feed(b"GET / HTTP/1.1\r\n" + garbage.replace(b"\n", b" "))
    assert s.phase is Phase.HEAD or s.refusal is Refusal.HEAD_TOO_LARGE
    if len(garbage) + 16 > LIMITS.max_header_bytes:
        assert s.refusal is Refusal.HEAD_TOO_LARGE
