"""Twilio Media Streams messages and the per-stream state machine (pure: no sockets).

Message shapes are exactly those of ``reference/protocols.md`` §1: ``sequenceNumber``,
``chunk`` and ``timestamp`` are *strings*, ``sampleRate`` and ``channels`` ints.

Two directions, two sets of types:

* Twilio → server (``parse_from_twilio``): ``Connected``, ``Start``, ``Media``, ``Dtmf``,
  ``Mark``, ``Stop``.
* server → Twilio (``parse_from_server``): ``OutMedia``, ``OutMark``, ``Clear``.

Every malformed frame (bad JSON, missing field, wrong type, unknown event) raises
:class:`~bridge.errors.TwilioProtocolError` with what was expected; nothing else escapes.

:class:`MediaStream` checks the order of events on one stream (connected → start →
media/dtmf/mark… → stop) for whichever side uses it: the bridge receiving from Twilio,
or the emulator's caller checking what it sends.
"""

from __future__ import annotations

import binascii
import enum

import msgspec

from bridge.b64 import decode_strict
from bridge.errors import TwilioProtocolError

# --------------------------------------------------------------------------- Twilio → server


class Connected(msgspec.Struct, tag_field="event", tag="connected"):
    protocol: str = "Call"
    version: str = "1.0.0"


class MediaFormat(msgspec.Struct):
    encoding: str = "audio/x-mulaw"
    sampleRate: int = 8000
    channels: int = 1


class StartBody(msgspec.Struct):
    streamSid: str
    callSid: str
    accountSid: str = ""
    tracks: list[str] = msgspec.field(default_factory=lambda: ["inbound"])
    mediaFormat: MediaFormat = msgspec.field(default_factory=MediaFormat)
    customParameters: dict[str, str] = msgspec.field(default_factory=dict)


class Start(msgspec.Struct, tag_field="event", tag="start"):
    sequenceNumber: str
    start: StartBody
    streamSid: str


class MediaBody(msgspec.Struct):
    payload: str
    track: str = "inbound"
    chunk: str = ""
    timestamp: str = ""


class Media(msgspec.Struct, tag_field="event", tag="media"):
    sequenceNumber: str
    media: MediaBody
    streamSid: str


class DtmfBody(msgspec.Struct):
    digit: str
    track: str = "inbound_track"


class Dtmf(msgspec.Struct, tag_field="event", tag="dtmf"):
    streamSid: str
    sequenceNumber: str
    dtmf: DtmfBody


class MarkBody(msgspec.Struct):
    name: str


class Mark(msgspec.Struct, tag_field="event", tag="mark"):
    sequenceNumber: str
    streamSid: str
    mark: MarkBody


class StopBody(msgspec.Struct):
    accountSid: str = ""
    callSid: str = ""


class Stop(msgspec.Struct, tag_field="event", tag="stop"):
    sequenceNumber: str
    stop: StopBody
    streamSid: str


TwilioMessage = Connected | Start | Media | Dtmf | Mark | Stop

# --------------------------------------------------------------------------- server → Twilio


class OutMediaBody(msgspec.Struct):
    payload: str


class OutMedia(msgspec.Struct, tag_field="event", tag="media"):
    streamSid: str
    media: OutMediaBody


class OutMark(msgspec.Struct, tag_field="event", tag="mark"):
    streamSid: str
    mark: MarkBody


class Clear(msgspec.Struct, tag_field="event", tag="clear"):
    streamSid: str


ServerMessage = OutMedia | OutMark | Clear

# --------------------------------------------------------------------------- codec

_from_twilio = msgspec.json.Decoder(TwilioMessage)
_from_server = msgspec.json.Decoder(ServerMessage)
_encoder = msgspec.json.Encoder()

_MAX_SEQ_DIGITS = 12  # 10^12 frames of 20 ms is 600 years: longer is garbage


def _decode(decoder: msgspec.json.Decoder[object], data: str | bytes, side: str) -> object:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as e:  # a subclass of DecodeError: test it first
        raise TwilioProtocolError(f"{side}: {e}") from None
    except msgspec.DecodeError as e:
        raise TwilioProtocolError(f"{side}: expected a JSON text frame: {e}") from None


def parse_from_twilio(data: str | bytes) -> TwilioMessage:
    """Parse a text frame Twilio sent; raises TwilioProtocolError when malformed."""
    msg = _decode(_from_twilio, data, "from Twilio")
    assert isinstance(msg, Connected | Start | Media | Dtmf | Mark | Stop)
    return msg


def parse_from_server(data: str | bytes) -> ServerMessage:
    """Parse a text frame a server sent to Twilio (the emulator side)."""
    msg = _decode(_from_server, data, "to Twilio")
    assert isinstance(msg, OutMedia | OutMark | Clear)
    return msg


def encode(msg: msgspec.Struct) -> str:
    """The JSON text frame of any message, in either direction."""
    return _encoder.encode(msg).decode()


def media_frame(stream_sid: str, payload_b64: str) -> str:
    """Hot path: an outbound ``media`` frame without building a struct.

    Stream SIDs and base64 never need JSON escaping; ``stream_sid`` comes from a parsed
    ``start`` and is checked by :meth:`MediaStream.receive` to be plain.
    """
    return (
        '{"event":"media","streamSid":"'
        + stream_sid
        + '","media":{"payload":"'
        + payload_b64
        + '"}}'
    )


def inbound_media_frame(
    stream_sid: str, seq: int, chunk: int, timestamp_ms: int, payload_b64: str
) -> str:
    """Hot path: a Twilio → server ``media`` frame (the emulator's caller sends ~50/s/call).

    Same bytes as ``encode(Media(...))`` with ``track="inbound"``: the numbers go out as
    strings, as Twilio sends them.  ``stream_sid`` and base64 need no JSON escaping.
    """
    return (
        '{"event":"media","sequenceNumber":"'
        + str(seq)
        + '","media":{"payload":"'
        + payload_b64
        + '","track":"inbound","chunk":"'
        + str(chunk)
        + '","timestamp":"'
        + str(timestamp_ms)
        + '"},"streamSid":"'
        + stream_sid
        + '"}'
    )


def encode_payload(audio: bytes) -> str:
    """mu-law bytes → the base64 text of a ``media.payload``."""
    return binascii.b2a_base64(audio, newline=False).decode()


def decode_payload(payload_b64: str) -> bytes:
    """Base64 → mu-law bytes; invalid base64 is a protocol error, not a crash."""
    try:
        return decode_strict(payload_b64)
    except (binascii.Error, ValueError) as e:
        raise TwilioProtocolError(f"media payload: expected base64, {e}") from None


def binary_frame_error() -> TwilioProtocolError:
    """Twilio only speaks text frames (binary is its error 31950)."""
    return TwilioProtocolError("expected a text frame, got a binary frame")


# --------------------------------------------------------------------------- state machine


class StreamState(enum.Enum):
    AWAITING_CONNECTED = "awaiting_connected"
    CONNECTED = "connected"
    STARTED = "started"
    STOPPED = "stopped"


def _plain(s: str) -> bool:
    return s.isascii() and s.isalnum() and 0 < len(s) <= 64


class MediaStream:
    """Order and identity checks for one Media Stream, from ``connected`` to ``stop``.

    ``receive(msg)`` returns the message when it is acceptable in the current state and
    raises :class:`TwilioProtocolError` otherwise.  A missing ``connected`` is tolerated
    (``start`` is what carries the stream identity); everything else is strict:

    * ``media``/``dtmf``/``mark`` before ``start`` or after ``stop``;
    * a second ``start``; a ``streamSid`` other than the started one;
    * ``sequenceNumber`` that is not a decimal string of at most 12 digits.

    Sequence gaps and reorderings are counted (``gaps``, ``out_of_order``), not fatal:
    a lost frame must not end a call.
    """

    def __init__(self) -> None:
        self.state = StreamState.AWAITING_CONNECTED
        self.start: StartBody | None = None
        self.stream_sid: str | None = None
        self.last_seq = 0
        self.gaps = 0
        self.out_of_order = 0

    def receive(self, msg: TwilioMessage) -> TwilioMessage:
        if isinstance(msg, Connected):
            if self.state is not StreamState.AWAITING_CONNECTED:
                raise TwilioProtocolError(f"'connected' received in state {self.state.value}")
            self.state = StreamState.CONNECTED
            return msg
        self._check_seq(msg.sequenceNumber)
        if isinstance(msg, Start):
            if self.state in (StreamState.STARTED, StreamState.STOPPED):
                raise TwilioProtocolError(f"'start' received in state {self.state.value}")
            if not _plain(msg.streamSid) or msg.start.streamSid != msg.streamSid:
                raise TwilioProtocolError(
                    f"'start' has an invalid or inconsistent streamSid {msg.streamSid[:70]!r}"
                )
            if not _plain(msg.start.callSid):
                raise TwilioProtocolError(
                    f"'start' has an invalid callSid {msg.start.callSid[:70]!r}"
                )
            self.state = StreamState.STARTED
            self.start = msg.start
            self.stream_sid = msg.streamSid
            return msg
        if self.state is not StreamState.STARTED:
            raise TwilioProtocolError(
                f"expected 'start' before '{msg.__struct_config__.tag}', state is {self.state.value}"
            )
        if msg.streamSid != self.stream_sid:
            raise TwilioProtocolError(
                f"expected streamSid {self.stream_sid}, got {msg.streamSid[:70]!r}"
            )
        if isinstance(msg, Stop):
            self.state = StreamState.STOPPED
        return msg

    def _check_seq(self, seq: str) -> None:
        if not (seq.isascii() and seq.isdigit() and len(seq) <= _MAX_SEQ_DIGITS):
            raise TwilioProtocolError(
                f"expected sequenceNumber as a decimal string, got {seq[:20]!r}"
            )
        n = int(seq)
        if n <= self.last_seq:
            self.out_of_order += 1
            return
        if self.last_seq and n != self.last_seq + 1:
            self.gaps += n - self.last_seq - 1
        self.last_seq = n
