"""Request bodies and query strings → typed values, or an InputError naming the field.

msgspec does the validating; this module only turns its messages into the admin API's
error shape: a dotted field name (``dynamic_variables``, ``body`` when the whole body
is at fault) and a message, with 400 for a body that is not JSON and 422 for JSON that
does not fit.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import msgspec

from bridge.admin import models
from bridge.errors import InputError

T = TypeVar("T")

_NAMED = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]+)`")
_LEADING_NAME = re.compile(r"^`([^`]+)`")
_AT = re.compile(r" - at `(?:key` in `)?\$((?:[^`])*)`$")


def field_of(err: msgspec.ValidationError) -> str:
    """The dotted request field a msgspec validation error is about (``body`` if none)."""
    msg = str(err)
    parts: list[str] = []
    at = _AT.search(msg)
    if at:
        # "$.a.b[0]" / "$.a.d[...]" -> ["a", "b"]; list indexes and map keys say no more.
        path = re.sub(r"\[[^\]]*\]", "", at.group(1))
        parts = [p for p in path.split(".") if p]
    named = _NAMED.match(msg) or _LEADING_NAME.match(msg)
    if named:
        parts.append(named.group(1))
    return ".".join(parts) or "body"


# What a pattern means, for people: msgspec says "matching regex '^\\+[1-9]…'".
_PATTERN_WORDS: Final = {
    models.E164_PATTERN: "an E.164 number such as +14155550100",
    models.AGENT_ID_PATTERN: "an agent id (letters, digits, _ and -)",
    models.LANGUAGE_PATTERN: "a language code such as en or pt-br",
    models.VARIABLE_PATTERN: "a variable name (letters, digits, _; not starting with a digit)",
    models.TWILIO_NUMBER_SID_PATTERN: "a Twilio number SID (PN and 32 hex digits)",
}
_REGEX = re.compile(r"`str` matching regex ('(?:[^'\\]|\\.)*')")


def _message(err: msgspec.ValidationError) -> str:
    msg = _AT.sub("", str(err))
    m = _REGEX.search(msg)
    if m:
        words = _PATTERN_WORDS.get(ast.literal_eval(m.group(1)))
        if words:
            msg = msg[: m.start()] + words + msg[m.end() :]
    return msg


def decode_body(raw: bytes, cls: type[T]) -> T:
    """Decode a JSON request body into ``cls``; InputError (400/422) naming the field."""
    if not raw.strip():
        raise InputError("body", "a JSON object is required", status=422)
    try:
        return msgspec.json.decode(raw, type=cls)
    except msgspec.ValidationError as e:
        raise InputError(field_of(e), _message(e), status=422) from None
    except msgspec.DecodeError as e:
        raise InputError("body", f"is not valid JSON ({e})", status=400) from None


def query_bool(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise InputError(name, f"must be true or false, got {raw!r}", status=400)


def query_int(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw.strip()):
        raise InputError(name, f"must be an integer {lo}-{hi}, got {raw!r}", status=400)
    value = int(raw)
    if not lo <= value <= hi:
        raise InputError(name, f"must be an integer {lo}-{hi}, got {value}", status=400)
    return value


def query_str(params: Mapping[str, str], name: str, pattern: str | None = None) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    # fullmatch: unlike search, "$" cannot then let a trailing newline through.
    if pattern is not None and not re.fullmatch(pattern, raw):
        raise InputError(name, f"has an invalid form: {raw!r}", status=400)
    return raw


def check_unknown_params(params: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse query parameters the endpoint does not know (a typo must not be ignored)."""
    for name in params:
        if name not in allowed:
            raise InputError(
                name, f"is not a parameter of this endpoint (known: {', '.join(allowed)})", 400
            )
