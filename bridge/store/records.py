"""Typed rows of the store: provisioned numbers and call records.

Records are frozen msgspec Structs so the admin API can encode them straight to JSON
(``msgspec.json.encode(rec)``) and decode/validate input with ``msgspec.convert``.
Constructing a Struct does not validate it; the store validates every record it is
given (:func:`validate_number`, :func:`validate_call`, :func:`validate_call_fields`) and
raises :class:`~bridge.errors.InputError` naming the field.

Times are Unix epoch seconds (float, UTC); the API layer formats them.
"""

from __future__ import annotations

import time
import typing
from typing import Annotated, Any, Final, Literal, TypedDict

import msgspec

from bridge.errors import InputError
from bridge.store.transcripts import LatencySummary, TranscriptEntry

E164_PATTERN: Final = r"^\+[1-9]\d{1,14}$"
E164 = Annotated[str, msgspec.Meta(pattern=E164_PATTERN)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]

Provider = Literal["twilio", "sip_trunk"]
Direction = Literal["inbound", "outbound"]
CallStatus = Literal[
    "queued", "ringing", "in-progress", "completed", "busy", "no-answer", "failed", "canceled"
]
# A call in one of these states is still "live" (admin `?live=true`).
LIVE_STATUSES: Final[tuple[str, ...]] = ("queued", "ringing", "in-progress")


class NumberRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A phone number the bridge answers, its agent, and bridge-side overrides.

    ``number``, ``phone_number_id``, ``label``, ``provider``, ``agent_id`` and
    ``agent_name`` mirror the platform; the rest are the bridge's own and survive a
    re-sync from the platform.
    """

    number: E164
    phone_number_id: str | None = None
    label: str = ""
    provider: Provider = "twilio"
    agent_id: str | None = None
    agent_name: str | None = None
    # Overrides applied to every call on this number.
    first_message: str | None = None
    language: str | None = None
    dynamic_variables: dict[str, str] = msgspec.field(default_factory=dict)
    fallback_number: E164 | None = None
    twilio_number_sid: str | None = None
    # Record what callers to this number hear (bridge/recording), whatever the config says.
    record: bool = False
    updated_at: float = 0.0


class CallRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One phone call as the bridge saw it.

    ``bytes_in`` counts caller audio received from Twilio (mu-law bytes), ``bytes_out``
    audio sent to the caller; ``first_audio_ms`` is the delay from the stream start to
    the first agent audio sent to the caller.
    """

    call_sid: Annotated[str, msgspec.Meta(min_length=1)]
    stream_sid: str | None = None
    conversation_id: str | None = None
    direction: Direction = "inbound"
    from_number: str | None = None
    to_number: str | None = None
    agent_id: str | None = None
    status: CallStatus = "queued"
    started_at: NonNegFloat = msgspec.field(default_factory=time.time)
    answered_at: NonNegFloat | None = None
    ended_at: NonNegFloat | None = None
    duration_s: NonNegFloat | None = None
    end_reason: str | None = None
    bytes_in: NonNegInt = 0
    bytes_out: NonNegInt = 0
    interruptions: NonNegInt = 0
    first_audio_ms: NonNegFloat | None = None
    transfer_target: str | None = None
    # The bridge instance that handles the call's media stream (host or pod name); set
    # by the store when the stream starts (the change that sets ``stream_sid``).
    instance: str | None = None
    # Free-form timeline, e.g. [{"at": 1.5, "event": "transfer", "to": "+1…"}].
    events: tuple[dict[str, Any], ...] = ()
    # What was said and done, with each agent turn's latency (bridge/store/transcripts.py;
    # written when the call ends, bounded), and those latencies summarised.
    transcript: tuple[TranscriptEntry, ...] = ()
    latency: LatencySummary | None = None

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


class CallUpdate(TypedDict, total=False):
    """The fields of a :class:`CallRecord` a call changes as it goes (any subset):
    ``Store.update_call(sid, **update)`` or ``CallRecord(call_sid=sid, **update)``."""

    stream_sid: str | None
    conversation_id: str | None
    from_number: str | None
    to_number: str | None
    agent_id: str | None
    status: CallStatus
    answered_at: float | None
    ended_at: float | None
    duration_s: float | None
    end_reason: str | None
    bytes_in: int
    bytes_out: int
    interruptions: int
    first_audio_ms: float | None
    transfer_target: str | None
    transcript: tuple[TranscriptEntry, ...]
    latency: LatencySummary | None


class CallPage(msgspec.Struct, frozen=True):
    """One page of :meth:`Store.list_calls`; pass ``next_cursor`` back for the next."""

    items: list[CallRecord]
    next_cursor: str | None


NUMBER_FIELDS: Final[tuple[str, ...]] = NumberRecord.__struct_fields__
CALL_FIELDS: Final[tuple[str, ...]] = CallRecord.__struct_fields__
_CALL_HINTS: Final[dict[str, Any]] = typing.get_type_hints(CallRecord, include_extras=True)


def _validated(rec: Any, cls: type[Any], what: str) -> Any:
    if not isinstance(rec, cls):
        raise InputError(what, f"expected a {cls.__name__}, got {type(rec).__name__}")
    try:
        return msgspec.convert(msgspec.structs.asdict(rec), cls)
    except msgspec.ValidationError as e:
        raise InputError(_field_of(e, what), str(e)) from None


def _field_of(e: msgspec.ValidationError, default: str) -> str:
    # msgspec says "... - at `$.field`"; name that field.
    msg = str(e)
    if "`$." in msg:
        return msg.rsplit("`$.", 1)[1].split("`", 1)[0].split("[", 1)[0]
    return default


def validate_number(rec: NumberRecord) -> NumberRecord:
    """``rec`` if every field has its declared type and form; else InputError."""
    out: NumberRecord = _validated(rec, NumberRecord, "number")
    return out


def validate_call(rec: CallRecord) -> CallRecord:
    out: CallRecord = _validated(rec, CallRecord, "call")
    return out


def validate_call_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Check a partial update: known field names (not ``call_sid``), values of their type."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in _CALL_HINTS or name == "call_sid":
            raise InputError(name, "is not an updatable call record field")
        try:
            out[name] = msgspec.convert(value, _CALL_HINTS[name])
        except msgspec.ValidationError as e:
            raise InputError(name, str(e)) from None
    return out
