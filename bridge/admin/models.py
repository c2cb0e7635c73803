"""Typed bodies of the admin API: what it accepts and what it answers.

Requests are decoded straight into these Structs (:func:`bridge.admin.decode.decode_body`),
so a body that decodes is a body that is valid; the OpenAPI document is generated from
the same Structs (:mod:`bridge.admin.openapi`), so the two cannot drift apart.

Patterns are written for both sides: ``[0-9]`` rather than ``\\d`` (Python's ``\\d`` also
matches non-ASCII digits), and the ``__post_init__`` checks cover what a JSON Schema
pattern cannot say (``$`` in Python also matches before a trailing newline).

Responses reuse the store's records (:class:`~bridge.store.NumberRecord`,
:class:`~bridge.store.CallRecord`, :class:`~bridge.store.CallPage`) as they are.

The error body (:class:`ErrorBody`) is every JSON API's of the bridge, so it lives in the
leaf :mod:`bridge.http`; it is named here too, as part of this API's vocabulary.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, UnsetType

from bridge.http import ErrorBody, ErrorInfo, Rollback, UpstreamInfo
from bridge.store import NumberRecord
from bridge.store.instances import InstanceInfo
from bridge.store.transcripts import LatencySummary, TranscriptEntry
from bridge.twilio.stream_token import TOKEN_PARAMETER

E164_PATTERN: Final = r"^\+[1-9][0-9]{1,14}$"
AGENT_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,128}$"
# Dynamic variable names; ``system__`` names are the platform's own (checked below).
VARIABLE_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
LANGUAGE_PATTERN: Final = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"
TWILIO_NUMBER_SID_PATTERN: Final = r"^PN[0-9a-fA-F]{32}$"
RESERVED_VARIABLE_PREFIX: Final = "system__"

E164 = Annotated[
    str,
    msgspec.Meta(pattern=E164_PATTERN, description="E.164 number", examples=["+14155550100"]),
]
AgentId = Annotated[
    str,
    msgspec.Meta(pattern=AGENT_ID_PATTERN, description="Agents Platform agent id"),
]
Language = Annotated[
    str, msgspec.Meta(pattern=LANGUAGE_PATTERN, description="language code such as en or pt-br")
]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Variables = Annotated[
    dict[
        Annotated[str, msgspec.Meta(pattern=VARIABLE_PATTERN)],
        Annotated[str, msgspec.Meta(max_length=1000)],
    ],
    msgspec.Meta(
        max_length=64,
        description="dynamic variables sent to the agent on every call to this number "
        "(names may not start with system__)",
    ),
]
TwilioNumberSid = Annotated[str, msgspec.Meta(pattern=TWILIO_NUMBER_SID_PATTERN)]
PhoneNumberId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


def _check_trimmed(field: str, value: object) -> None:
    # Python's "$" lets a trailing "\n" through the patterns above.
    if isinstance(value, str) and value != value.strip():
        raise ValueError(f"`{field}` must not have surrounding whitespace")


def _check_variables(value: object) -> None:
    if isinstance(value, dict):
        for name in value:
            if name.startswith(RESERVED_VARIABLE_PREFIX):
                raise ValueError(
                    f"`dynamic_variables` name {name!r} is reserved "
                    f"(names starting with {RESERVED_VARIABLE_PREFIX} belong to the platform)"
                )


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


# --------------------------------------------------------------------------- numbers


class ImportNumber(_Request):
    """``POST /admin/numbers``: bring a Twilio number under this bridge."""

    number: E164
    label: Label | None = None
    agent_id: AgentId | None = None
    # Point the Twilio number's voice URL and status callback at this bridge.
    configure_twilio: bool = True
    # The Twilio IncomingPhoneNumber SID; looked up by number when not given.
    twilio_number_sid: TwilioNumberSid | None = None
    first_message: Text | None = None
    language: Language | None = None
    dynamic_variables: Variables = msgspec.field(default_factory=dict)
    fallback_number: E164 | None = None
    # Record what callers to this number hear (docs/recording.md).
    record: bool = False

    def __post_init__(self) -> None:
        _check_trimmed("number", self.number)
        _check_trimmed("fallback_number", self.fallback_number)
        _check_trimmed("language", self.language)
        _check_variables(self.dynamic_variables)


class UpdateNumber(_Request):
    """``PATCH /admin/numbers/{id}``: a field left out is unchanged; ``null`` clears it.

    ``agent_id: null`` unassigns the agent (calls then follow the static routes or the
    default agent).
    """

    agent_id: AgentId | UnsetType | None = UNSET
    first_message: Text | UnsetType | None = UNSET
    language: Language | UnsetType | None = UNSET
    dynamic_variables: Variables | UnsetType | None = UNSET
    fallback_number: E164 | UnsetType | None = UNSET
    record: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_trimmed("fallback_number", self.fallback_number)
        _check_trimmed("language", self.language)
        _check_variables(self.dynamic_variables)

    def changes(self) -> dict[str, Any]:
        """The fields given, by name (``dynamic_variables: null`` means ``{}``)."""
        out = {f: getattr(self, f) for f in self.__struct_fields__ if getattr(self, f) is not UNSET}
        if "dynamic_variables" in out and out["dynamic_variables"] is None:
            out["dynamic_variables"] = {}
        return out


class NumberList(msgspec.Struct, kw_only=True):
    items: list[NumberRecord]


class InstanceList(msgspec.Struct, kw_only=True):
    """The bridge instances sharing the store (``GET /admin/instances``), this one first."""

    items: list[InstanceInfo]


class TwilioSetup(msgspec.Struct, kw_only=True):
    """What the Twilio number was pointed at, and what it pointed at before."""

    number_sid: str
    voice_url: str | None
    status_callback: str | None
    previous_voice_url: str | None = None
    previous_status_callback: str | None = None


class ImportResult(msgspec.Struct, kw_only=True):
    number: NumberRecord
    # None when ``configure_twilio`` was false.
    twilio: TwilioSetup | None = None


class DeleteResult(msgspec.Struct, kw_only=True):
    number: str
    phone_number_id: str | None
    # False when the platform no longer had the number (already deleted there).
    platform_deleted: bool
    # Set when the Twilio voice URL was restored.
    twilio: TwilioSetup | None = None


# --------------------------------------------------------------------------- agents


class CreateAgent(_Request):
    """``POST /admin/agents``: a telephony-ready agent (ulaw_8000 both ways, end_call on)."""

    name: Label
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=20000)]
    first_message: Text | None = None
    language: Language = "en"
    voice_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None

    def __post_init__(self) -> None:
        _check_trimmed("language", self.language)
        if not self.name.strip():
            raise ValueError("`name` must not be blank")
        if not self.prompt.strip():
            raise ValueError("`prompt` must not be blank")


class AgentInfo(msgspec.Struct, kw_only=True):
    agent_id: str
    name: str
    created_at: float | None = None


class AgentList(msgspec.Struct, kw_only=True):
    items: list[AgentInfo]


# --------------------------------------------------------------------------- calls


class TransferCall(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /admin/calls/{sid}/transfer``: hand a live call to a number or SIP URI."""

    # E.164 (+14155550100) or a SIP URI; must match telephony.transfer_allow.
    to: str


class TransferResult(msgspec.Struct, kw_only=True):
    call_sid: str
    to: str
    # "transferring": the call's stream ends and Twilio dials ``to``.
    status: Literal["transferring"] = "transferring"


class HangupResult(msgspec.Struct, kw_only=True):
    call_sid: str
    # "hanging_up": the live call was told to end (it ends within the goodbye timeout).
    status: Literal["hanging_up"] = "hanging_up"


class CallTranscript(msgspec.Struct, kw_only=True):
    """GET /admin/calls/{sid}/transcript: the call's turns in order (``t``: seconds since
    its stream started) and its per-turn latency summary; empty until the call ends."""

    call_sid: str
    status: str
    entries: tuple[TranscriptEntry, ...]
    latency: LatencySummary | None


# --------------------------------------------------------------------------- outbound calls
# POST /admin/calls, served by the telephony features (bridge/telephony/endpoints.py).

# <Parameter> names the bridge writes for itself; a dynamic variable may not take them.
CONTEXT_PARAMETERS: Final = frozenset(
    {
        "agent_id",
        "caller_id",
        "called_number",
        "direction",
        "first_message",
        "answered_by",
        TOKEN_PARAMETER,
    }
)

MachineDetection = Literal["Enable", "DetectMessageEnd"]


class OutboundCall(
    msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename={"from_": "from"}
):
    """``POST /admin/calls``: dial ``to`` from one of our numbers and bridge it to an agent.

    Give the number we call from as ``from`` (E.164) or ``phone_number_id``.  The agent
    defaults to the from-number's agent.
    """

    to: E164
    from_: E164 | None = None
    phone_number_id: PhoneNumberId | None = None
    agent_id: AgentId | None = None
    dynamic_variables: Variables = msgspec.field(default_factory=dict)
    first_message: Annotated[str, msgspec.Meta(min_length=1, max_length=450)] | None = None
    # Twilio's MachineDetection; the result is acted on per telephony.voicemail_action.
    machine_detection: MachineDetection | None = None
    # Seconds to let it ring (Twilio's Timeout); default telephony.ring_timeout_s.
    ring_timeout: Annotated[int, msgspec.Meta(ge=5, le=600)] | None = None

    def __post_init__(self) -> None:
        for field in ("to", "from_"):
            value = getattr(self, field)
            if isinstance(value, str) and value != value.strip():
                raise ValueError(
                    f"`{field.rstrip('_')}` must be an E.164 number without whitespace"
                )
        if (self.from_ is None) == (self.phone_number_id is None):
            raise ValueError("give exactly one of `from` or `phone_number_id`")
        for name in self.dynamic_variables:
            if name.startswith(RESERVED_VARIABLE_PREFIX):
                raise ValueError(
                    f"`dynamic_variables` name {name!r} is reserved "
                    f"(names starting with {RESERVED_VARIABLE_PREFIX} belong to the platform)"
                )
            if name in CONTEXT_PARAMETERS:
                raise ValueError(
                    f"`dynamic_variables` name {name!r} is set by the bridge itself "
                    f"(reserved: {', '.join(sorted(CONTEXT_PARAMETERS))})"
                )


class DialResult(msgspec.Struct, kw_only=True):
    call_sid: str
    status: str
    to: str
    from_: str = msgspec.field(name="from")
    agent_id: str


__all__ = ["ErrorBody", "ErrorInfo", "Rollback", "UpstreamInfo"]  # re-exported
