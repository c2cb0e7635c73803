"""Fuzz the two protocol parsers: whatever comes in, a typed message or the typed error.

A few hundred examples per property keep the suite short;
``BRIDGE_FUZZ_EXAMPLES=20000 uv run pytest tests/fuzz`` runs a longer session.
"""

from __future__ import annotations

import os
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.convai import messages as convai
from bridge.errors import ConvaiProtocolError, TwilioProtocolError
from bridge.twilio import media as twilio
from tests.fuzz.strategies import (
    CONVAI_CLIENT_MESSAGES,
    CONVAI_SERVER_MESSAGES,
    TWILIO_MESSAGES,
    frames,
)

# A few hundred examples per property in the suite; BRIDGE_FUZZ_EXAMPLES=20000 for a session.
FUZZ = settings(
    max_examples=int(os.environ.get("BRIDGE_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TWILIO_TYPES = (
    twilio.Connected,
    twilio.Start,
    twilio.Media,
    twilio.Dtmf,
    twilio.Mark,
    twilio.Stop,
)


@FUZZ
@given(frames(TWILIO_MESSAGES))
def test_parse_from_twilio_gives_a_message_or_the_protocol_error(frame: str | bytes) -> None:
    try:
        msg = twilio.parse_from_twilio(frame)
    except TwilioProtocolError as e:
        assert e.detail  # says what was wrong
        return
    assert isinstance(msg, TWILIO_TYPES)
    # What parsed re-encodes and parses to the same message (no silent reshaping).
    assert twilio.parse_from_twilio(twilio.encode(msg)) == msg


@FUZZ
@given(st.lists(frames(TWILIO_MESSAGES), max_size=12))
def test_media_stream_accepts_or_refuses_with_the_protocol_error(
    sequence: list[str | bytes],
) -> None:
    stream = twilio.MediaStream()
    for frame in sequence:
        try:
            msg = twilio.parse_from_twilio(frame)
            stream.receive(msg)
        except TwilioProtocolError:
            continue
        # Anything accepted after 'start' belongs to the started stream.
        if stream.stream_sid is not None and not isinstance(msg, twilio.Connected):
            assert msg.streamSid == stream.stream_sid
    assert stream.gaps >= 0 and stream.out_of_order >= 0


SERVER_TYPES = (*typing.get_args(convai.ServerMessage), convai.UnknownMessage)
CLIENT_TYPES = (
    *typing.get_args(convai.ClientMessage),
    convai.UserAudioChunk,
    convai.UnknownMessage,
)


@FUZZ
@given(frames(CONVAI_SERVER_MESSAGES))
def test_parse_server_gives_a_message_or_the_protocol_error(frame: str | bytes) -> None:
    try:
        msg = convai.parse_server(frame)
    except ConvaiProtocolError as e:
        assert e.detail
        return
    assert isinstance(msg, SERVER_TYPES)


@FUZZ
@given(frames(CONVAI_CLIENT_MESSAGES))
def test_parse_client_gives_a_message_or_the_protocol_error(frame: str | bytes) -> None:
    try:
        msg = convai.parse_client(frame)
    except ConvaiProtocolError as e:
        assert e.detail
        return
    assert isinstance(msg, CLIENT_TYPES)
