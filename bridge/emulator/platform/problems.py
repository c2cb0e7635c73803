"""The platform's error bodies, built from what went wrong.

* 422: FastAPI's validation shape ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``
  with ``loc`` starting at ``body``, ``query`` or ``path``;
* anything else: ``{"detail": {"status": "<code>", "message": "..."}}``.

Handlers raise :class:`~bridge.errors.InputError` with ``field`` as a dotted location
(``"body.phone_number"``, ``"path.agent_id"``) and the HTTP status; msgspec decode errors
are turned into the same items with the failing path spelled out.
"""

from __future__ import annotations

import re

import msgspec

from bridge.errors import InputError
from bridge.platform.common import (
    ErrorBody,
    ErrorDetail,
    ValidationErrorBody,
    ValidationErrorItem,
)

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_FIELD = re.compile(r"`(?P<name>[^`]+)`")
_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
MISSING = "Field required"
EXTRA = "Extra inputs are not permitted"


def _path_parts(path: str) -> list[str | int]:
    return [name if name else int(idx) for name, idx in _PART.findall(path)]


def msgspec_items(
    error: msgspec.ValidationError | msgspec.DecodeError, prefix: list[str | int]
) -> list[ValidationErrorItem]:
    """One validation item for a msgspec error, its ``loc`` rooted at ``prefix``."""
    if not isinstance(error, msgspec.ValidationError):  # (ValidationError is a DecodeError)
        return [ValidationErrorItem(loc=[*prefix], msg=str(error), type="json_invalid")]
    m = _AT.match(str(error))
    assert m is not None  # the pattern matches any string
    msg, loc = m["msg"], [*prefix, *_path_parts(m["path"] or "")]
    field = _FIELD.search(msg)
    if msg.startswith("Object missing required field"):
        msg, loc = MISSING, [*loc, field["name"]] if field else loc
    elif msg.startswith("Object contains unknown field"):
        msg, loc = EXTRA, [*loc, field["name"]] if field else loc
    return [ValidationErrorItem(loc=loc, msg=msg, type=error_type(msg))]


def error_type(msg: str) -> str:
    """The FastAPI/pydantic error ``type`` for one of our validation messages."""
    if msg == MISSING:
        return "missing"
    if msg == EXTRA:
        return "extra_forbidden"
    if msg.startswith("JSON is malformed"):
        return "json_invalid"
    if msg.startswith("Invalid enum value"):
        return "enum"
    if msg.startswith("Expected `"):
        return "type_error"
    return "value_error"


def input_error_from_msgspec(
    error: msgspec.ValidationError | msgspec.DecodeError, prefix: list[str | int]
) -> InputError:
    """An InputError (422) naming the first failing location, for errors raised in state."""
    item = msgspec_items(error, prefix)[0]
    return InputError(".".join(str(p) for p in item.loc), item.msg, status=422)


def error_code(status: int, field: str) -> str:
    """A machine code in the platform's style: ``agent_not_found``, ``invalid_api_key``."""
    name = field.rsplit(".", 1)[-1].removesuffix("_id")
    if status == 404:
        return f"{name}_not_found"
    if status == 401:
        return "invalid_api_key"
    if status == 400:
        return f"invalid_{name}"
    return "error"


def body_for(error: InputError) -> ValidationErrorBody | ErrorBody:
    if error.status == 422:
        loc: list[str | int] = [int(p) if p.isdigit() else p for p in error.field.split(".")]
        return ValidationErrorBody(
            detail=[ValidationErrorItem(loc=loc, msg=error.problem, type=error_type(error.problem))]
        )
    return ErrorBody(
        detail=ErrorDetail(status=error_code(error.status, error.field), message=error.problem)
    )
