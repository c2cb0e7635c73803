"""Media Streams core: exact wire shapes, round trips, malformed input, stream order."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import TwilioProtocolError
from bridge.twilio import media as m

# The frames of protocols.md §1, verbatim apart from the placeholders.
START = (
    '{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1",'
    '"callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw",'
    '"sampleRate":8000,"channels":1},"customParameters":{"agent_id":"abc"}},"streamSid":"MZ1"}'
)
MEDIA = (
    '{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2",'
    '"timestamp":"5","payload":"/w=="},"streamSid":"MZ1"}'
)
DTMF = (
    '{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5",'
    '"dtmf":{"track":"inbound_track","digit":"1"}}'
)
MARK = '{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"my label"}}'
STOP = (
    '{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},'
    '"streamSid":"MZ1"}'
)


def test_parses_the_reference_frames_with_twilio_types() -> None:
    assert m.parse_from_twilio('{"event":"connected","protocol":"Call","version":"1.0.0"}') == (
        m.Connected()
    )
    start = m.parse_from_twilio(START)
    assert isinstance(start, m.Start)
    assert start.sequenceNumber == "1"
    assert start.start.mediaFormat.sampleRate == 8000
    assert start.start.customParameters == {"agent_id": "abc"}
    media = m.parse_from_twilio(MEDIA)
    assert isinstance(media, m.Media)
    assert (media.media.chunk, media.media.timestamp) == ("2", "5")
    assert m.decode_payload(media.media.payload) == b"\xff"
    dtmf = m.parse_from_twilio(DTMF)
    assert isinstance(dtmf, m.Dtmf) and dtmf.dtmf.digit == "1"
    mark = m.parse_from_twilio(MARK)
    assert isinstance(mark, m.Mark) and mark.mark.name == "my label"
    stop = m.parse_from_twilio(STOP)
    assert isinstance(stop, m.Stop) and stop.stop.callSid == "CA1"


def test_serializes_server_messages_exactly() -> None:
    assert json.loads(m.encode(m.Clear(streamSid="MZ1"))) == {"event": "clear", "streamSid": "MZ1"}
    assert json.loads(m.encode(m.OutMark(streamSid="MZ1", mark=m.MarkBody("r-1")))) == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "r-1"},
    }
    frame = m.media_frame("MZ1", "AAE=")
    assert frame == m.encode(m.OutMedia(streamSid="MZ1", media=m.OutMediaBody("AAE=")))
    assert m.parse_from_server(frame) == m.OutMedia("MZ1", m.OutMediaBody("AAE="))


def test_inbound_media_frame_matches_the_struct_encoding() -> None:
    frame = m.inbound_media_frame("MZ9", 7, 6, 100, "AAE=")
    expected = m.Media(
        sequenceNumber="7",
        media=m.MediaBody(payload="AAE=", track="inbound", chunk="6", timestamp="100"),
        streamSid="MZ9",
    )
    assert frame == m.encode(expected)
    assert m.parse_from_twilio(frame) == expected


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "",
        "[]",
        '{"event":"media"}',  # missing fields
        '{"event":"bogus","streamSid":"MZ1"}',  # unknown event
        '{"event":"start","sequenceNumber":1,"start":{"streamSid":"MZ1","callSid":"CA1"},"streamSid":"MZ1"}',
        '{"event":"start","sequenceNumber":"1","start":{"streamSid":"MZ1","callSid":"CA1",'
        '"mediaFormat":{"sampleRate":"8000"}},"streamSid":"MZ1"}',  # int sent as string
        b"\xff\xfe\x00",
    ],
)
def test_malformed_frames_are_protocol_errors(frame: str | bytes) -> None:
    with pytest.raises(TwilioProtocolError):
        m.parse_from_twilio(frame)


@pytest.mark.parametrize(
    "frame", ['{"event":"media","streamSid":"MZ1"}', '{"event":"stop","streamSid":"MZ1"}', "{"]
)
def test_malformed_server_frames_are_protocol_errors(frame: str) -> None:
    with pytest.raises(TwilioProtocolError):
        m.parse_from_server(frame)


@pytest.mark.parametrize("payload", ["@@@@", "AAE", "A=A="])
def test_bad_base64_is_a_protocol_error(payload: str) -> None:
    with pytest.raises(TwilioProtocolError, match="base64"):
        m.decode_payload(payload)


def test_binary_frames_are_named() -> None:
    assert "binary" in str(m.binary_frame_error())


# --------------------------------------------------------------------------- state machine


def _media(seq: int, sid: str = "MZ1") -> m.Media:
    return m.Media(str(seq), m.MediaBody(payload="/w=="), sid)


def _start(sid: str = "MZ1", seq: str = "1") -> m.Start:
    return m.Start(seq, m.StartBody(streamSid=sid, callSid="CA1"), sid)


def test_stream_accepts_the_normal_sequence_and_counts_gaps() -> None:
    s = m.MediaStream()
    s.receive(m.Connected())
    s.receive(_start())
    assert s.state is m.StreamState.STARTED and s.stream_sid == "MZ1"
    s.receive(_media(2))
    s.receive(_media(5))  # 3 and 4 lost
    s.receive(_media(4))  # late
    s.receive(m.Stop("6", m.StopBody(), "MZ1"))
    assert (s.gaps, s.out_of_order, s.state) == (2, 1, m.StreamState.STOPPED)


@pytest.mark.parametrize(
    "msgs",
    [
        [m.Connected(), _media(2)],  # media before start
        [m.Connected(), m.Connected()],
        [_start(), _start()],
        [_start(), _media(2, sid="MZ2")],  # wrong stream
        [_start(sid="MZ 1")],  # not a plain sid
        [_start(seq="x1")],
        [_start(), m.Stop("2", m.StopBody(), "MZ1"), _media(3)],  # after stop
    ],
)
def test_stream_rejects_out_of_order_events(msgs: list[m.TwilioMessage]) -> None:
    s = m.MediaStream()
    with pytest.raises(TwilioProtocolError):
        for msg in msgs:
            s.receive(msg)


# --------------------------------------------------------------------------- properties

_sid = st.text(alphabet="abcdef0123456789", min_size=1, max_size=34).map(lambda s: "MZ" + s)
_seq = st.integers(min_value=0, max_value=10**9).map(str)
_text = st.text(max_size=20)
_b64 = st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode())

_twilio_msgs = st.one_of(
    st.builds(m.Connected, protocol=_text, version=_text),
    st.builds(
        m.Start,
        sequenceNumber=_seq,
        start=st.builds(
            m.StartBody,
            streamSid=_sid,
            callSid=_sid,
            accountSid=_text,
            tracks=st.lists(_text, max_size=2),
            mediaFormat=st.builds(
                m.MediaFormat, encoding=_text, sampleRate=st.integers(), channels=st.integers()
            ),
            customParameters=st.dictionaries(_text, _text, max_size=3),
        ),
        streamSid=_sid,
    ),
    st.builds(
        m.Media,
        sequenceNumber=_seq,
        media=st.builds(m.MediaBody, payload=_b64, track=_text, chunk=_seq, timestamp=_seq),
        streamSid=_sid,
    ),
    st.builds(
        m.Dtmf, streamSid=_sid, sequenceNumber=_seq, dtmf=st.builds(m.DtmfBody, _text, _text)
    ),
    st.builds(m.Mark, sequenceNumber=_seq, streamSid=_sid, mark=st.builds(m.MarkBody, _text)),
    st.builds(
        m.Stop, sequenceNumber=_seq, stop=st.builds(m.StopBody, _text, _text), streamSid=_sid
    ),
)
_server_msgs = st.one_of(
    st.builds(m.OutMedia, streamSid=_sid, media=st.builds(m.OutMediaBody, _b64)),
    st.builds(m.OutMark, streamSid=_sid, mark=st.builds(m.MarkBody, _text)),
    st.builds(m.Clear, streamSid=_sid),
)


@settings(max_examples=150)
@given(_twilio_msgs)
def test_twilio_messages_round_trip(msg: m.TwilioMessage) -> None:
    assert m.parse_from_twilio(m.encode(msg)) == msg


@settings(max_examples=100)
@given(_server_msgs)
def test_server_messages_round_trip(msg: m.ServerMessage) -> None:
    assert m.parse_from_server(m.encode(msg)) == msg


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_random_input_never_escapes_as_anything_but_a_protocol_error(data: bytes | str) -> None:
    try:
        msg: object = m.parse_from_twilio(data)
    except TwilioProtocolError as e:
        assert e.detail.startswith("from Twilio")
    else:
        assert isinstance(msg, m.Connected | m.Start | m.Media | m.Dtmf | m.Mark | m.Stop)
    try:
        msg = m.parse_from_server(data)
    except TwilioProtocolError as e:
        assert e.detail.startswith("to Twilio")
    else:
        assert isinstance(msg, m.OutMedia | m.OutMark | m.Clear)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=100)
@given(
    st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "clear", "x"]),
    st.dictionaries(
        st.sampled_from(
            ["sequenceNumber", "streamSid", "start", "media", "dtmf", "mark", "stop", "protocol"]
        ),
        _json_values,
    ),
)
def test_near_miss_frames_are_protocol_errors_or_valid(event: str, body: dict[str, object]) -> None:
    frame = json.dumps({"event": event, **body})
    try:
        msg = m.parse_from_twilio(frame)
    except TwilioProtocolError:
        return
    assert msg.__struct_config__.tag == event
    # Whatever parsed must be fed to a stream without any other exception escaping.
    stream = m.MediaStream()
    try:
        assert stream.receive(msg) is msg
    except TwilioProtocolError:
        assert stream.state is not m.StreamState.STOPPED


@settings(max_examples=100)
@given(st.lists(_twilio_msgs, max_size=8))
def test_stream_state_machine_raises_only_protocol_errors(msgs: list[m.TwilioMessage]) -> None:
    s = m.MediaStream()
    for msg in msgs:
        before = s.state
        try:
            s.receive(msg)
        except TwilioProtocolError:
            assert s.state is before  # a rejected event changes nothing


@settings(max_examples=100)
@given(st.text(max_size=60))
def test_decode_payload_never_crashes(payload: str) -> None:
    try:
        out = m.decode_payload(payload)
    except TwilioProtocolError as e:
        assert "base64" in e.detail
    else:
        assert base64.b64encode(out).decode() == payload
