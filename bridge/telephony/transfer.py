"""Transfer destinations: the ``transfer_call`` tool's parameters and the allow-list (pure).

An agent that can dial any number is a toll-fraud hole: a caller can talk it into
calling premium-rate numbers on the operator's account.  So every destination an agent
asks for must match ``telephony.transfer_allow``; the list is empty by default, which
refuses every agent transfer.  The configured fallback number (``calls.fallback_number``)
is the operator's own choice and does not go through this list.

Allow-list entries (``config.example.toml`` documents them):

* ``+14155550100``: exactly that number;
* ``+1415*``: any number starting with ``+1415``; ``+*``: any number at all;
* ``sip:agent@pbx.example.com``: exactly that SIP URI (host compared case-insensitively);
* ``sip:*@pbx.example.com``: any user at that host (and port, when the entry has one).

Destinations from the agent are normalised before matching: spaces, dots, dashes and
parentheses are dropped from phone numbers (LLMs write ``+1 (415) 555-0100``), and the
result must be E.164.  SIP URIs must be plain ``sip:user@host[:port]``: URI parameters
and headers (``;transport=…``, ``?X-Header=…``) are refused rather than passed to
Twilio, since the agent's words should not choose transport or inject headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from bridge.errors import ConfigError, InputError

E164: Final = re.compile(r"^\+[1-9]\d{1,14}$")
_SEPARATORS: Final = re.compile(r"[\s().\-]")
_SIP: Final = re.compile(
    r"^sip:(?P<user>[A-Za-z0-9_.!~*'()&=+$,%\-]{1,64})@(?P<host>[A-Za-z0-9.\-]{1,253})"
    r"(?::(?P<port>\d{1,5}))?$"
)
_SIP_ENTRY_ANY: Final = re.compile(
    r"^sip:\*@(?P<host>[A-Za-z0-9.\-]{1,253})(?::(?P<port>\d{1,5}))?$"
)
_PREFIX: Final = re.compile(r"^\+(?:[1-9]\d{0,13})?\*$")
MAX_REASON: Final = 500

Kind = Literal["number", "sip"]


@dataclass(frozen=True)
class Destination:
    kind: Kind
    address: str  # E.164 number, or sip:user@host[:port] with the host lower-cased

    def __str__(self) -> str:
        return self.address


@dataclass(frozen=True)
class TransferRequest:
    destination: Destination
    reason: str | None = None


def parse_number(raw: object, field: str = "phone_number") -> Destination:
    if not isinstance(raw, str):
        raise InputError(field, f"expected a string, got {type(raw).__name__}")
    number = _SEPARATORS.sub("", raw)
    if not E164.match(number):
        raise InputError(field, f"{raw[:40]!r} is not an E.164 number such as +14155550100")
    return Destination("number", number)


def parse_sip(raw: object, field: str = "sip_uri") -> Destination:
    if not isinstance(raw, str):
        raise InputError(field, f"expected a string, got {type(raw).__name__}")
    m = _SIP.match(raw.strip())
    if not m:
        raise InputError(
            field, f"{raw[:60]!r} is not a plain SIP URI such as sip:agent@pbx.example.com"
        )
    port = m.group("port")
    if port is not None and not 0 < int(port) <= 65535:
        raise InputError(field, f"port {port} is out of range")
    host = m.group("host").lower()
    address = f"sip:{m.group('user')}@{host}" + (f":{port}" if port else "")
    return Destination("sip", address)


def parse_transfer_params(params: Mapping[str, Any]) -> TransferRequest:
    """The ``transfer_call`` tool's parameters: exactly one of phone_number / sip_uri."""
    number = params.get("phone_number")
    sip = params.get("sip_uri")
    # Empty strings count as absent: LLMs fill unused optional parameters with "".
    number = None if number == "" else number
    sip = None if sip == "" else sip
    if number is None and sip is None:
        raise InputError("phone_number", "missing; give phone_number or sip_uri")
    if number is not None and sip is not None:
        raise InputError("sip_uri", "give phone_number or sip_uri, not both")
    dest = parse_number(number) if number is not None else parse_sip(sip)
    reason = params.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InputError("reason", f"expected a string, got {type(reason).__name__}")
    return TransferRequest(dest, reason[:MAX_REASON] if reason else None)


@dataclass(frozen=True)
class _Rule:
    kind: Kind
    value: str  # exact address, number prefix, or host[:port] for sip:*@
    match: Literal["exact", "prefix", "sip_host"]

    def allows(self, dest: Destination) -> bool:
        if dest.kind != self.kind:
            return False
        if self.match == "exact":
            return dest.address == self.value
        if self.match == "prefix":
            return dest.address.startswith(self.value)
        return dest.address.split("@", 1)[1] == self.value


def _rule(entry: str) -> _Rule:
    key = "telephony.transfer_allow"
    expected = 'E.164 numbers, prefixes such as "+1415*", SIP URIs or "sip:*@host"'
    if E164.match(entry):
        return _Rule("number", entry, "exact")
    if _PREFIX.match(entry):
        return _Rule("number", entry[:-1], "prefix")
    any_user = _SIP_ENTRY_ANY.match(entry)
    if any_user:
        port = any_user.group("port")
        return _Rule(
            "sip", any_user.group("host").lower() + (f":{port}" if port else ""), "sip_host"
        )
    try:
        return _Rule("sip", parse_sip(entry).address, "exact")
    except InputError:
        raise ConfigError(key, f"entry {entry!r} is not valid", expected) from None


class AllowList:
    """Deny by default: a destination passes only if some entry matches it."""

    def __init__(self, entries: Iterable[str] = ()):
        self.entries = tuple(entries)
        self._rules = tuple(_rule(e) for e in self.entries)

    def allows(self, dest: Destination) -> bool:
        return any(r.allows(dest) for r in self._rules)

    def check(self, request: TransferRequest) -> TransferRequest:
        """``request`` if its destination is allowed, else InputError (status 403)."""
        if not self.allows(request.destination):
            field = "phone_number" if request.destination.kind == "number" else "sip_uri"
            raise InputError(
                field,
                f"{request.destination} is not an allowed transfer destination",
                status=403,
            )
        return request
