"""Request decoding: every bad body names its field, with the right status."""

from __future__ import annotations

import msgspec
import pytest

from bridge.admin.decode import (
    check_unknown_params,
    decode_body,
    field_of,
    query_bool,
    query_int,
    query_str,
)
from bridge.admin.models import CreateAgent, ImportNumber, UpdateNumber
from bridge.errors import InputError


def _fails(raw: bytes, cls: type[object]) -> InputError:
    with pytest.raises(InputError) as info:
        decode_body(raw, cls)
    return info.value


@pytest.mark.parametrize(
    ("raw", "field", "status"),
    [
        (b"", "body", 422),
        (b"{not json", "body", 400),
        (b"[]", "body", 422),
        (b"{}", "number", 422),  # missing required field
        (b'{"number": "4155550100"}', "number", 422),  # no +
        (b'{"number": "+04155550100"}', "number", 422),  # leading zero
        (b'{"number": "+1415555010012345"}', "number", 422),  # 16 digits
        (b'{"number": "+1415555\\u0661\\u0662"}', "number", 422),  # non-ASCII digits
        (b'{"number": "+14155550100\\n"}', "number", 422),  # trailing newline
        (b'{"number": 14155550100}', "number", 422),
        (b'{"number": "+14155550100", "agent": "x"}', "agent", 422),  # unknown field
        (b'{"number": "+14155550100", "agent_id": "a/b"}', "agent_id", 422),
        (b'{"number": "+14155550100", "fallback_number": "0"}', "fallback_number", 422),
        (b'{"number": "+14155550100", "twilio_number_sid": "PN1"}', "twilio_number_sid", 422),
        (b'{"number": "+14155550100", "configure_twilio": "yes"}', "configure_twilio", 422),
        (b'{"number": "+14155550100", "language": "english"}', "language", 422),
        (b'{"number": "+14155550100", "dynamic_variables": {"a": 1}}', "dynamic_variables", 422),
        (
            b'{"number": "+14155550100", "dynamic_variables": {"system__caller_id": "x"}}',
            "dynamic_variables",
            422,
        ),
        (b'{"number": "+14155550100", "dynamic_variables": {"1a": "x"}}', "dynamic_variables", 422),
    ],
)
def test_import_number_errors_name_the_field(raw: bytes, field: str, status: int) -> None:
    err = _fails(raw, ImportNumber)
    assert (err.field, err.status) == (field, status)
    assert err.problem  # says what was wrong


def test_pattern_errors_are_said_in_words() -> None:
    err = _fails(b'{"number": "4155550100"}', ImportNumber)
    assert err.problem == "Expected an E.164 number such as +14155550100"
    err = _fails(b'{"number": "+14155550100", "agent_id": "a b"}', ImportNumber)
    assert err.problem == "Expected an agent id (letters, digits, _ and -)"


def test_import_number_valid_body_decodes_with_defaults() -> None:
    req = decode_body(b'{"number": "+14155550100", "agent_id": "agent_1"}', ImportNumber)
    assert req.number == "+14155550100"
    assert req.agent_id == "agent_1"
    assert req.configure_twilio is True
    assert req.dynamic_variables == {}


def test_update_number_distinguishes_missing_from_null() -> None:
    req = decode_body(b'{"agent_id": null, "dynamic_variables": null}', UpdateNumber)
    assert req.changes() == {"agent_id": None, "dynamic_variables": {}}
    assert decode_body(b"{}", UpdateNumber).changes() == {}
    assert decode_body(b'{"language": "pt-br"}', UpdateNumber).changes() == {"language": "pt-br"}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"prompt": "p"}', "name"),
        (b'{"name": "n"}', "prompt"),
        (b'{"name": "  ", "prompt": "p"}', "name"),
        (b'{"name": "n", "prompt": "p", "voice_id": "a b"}', "voice_id"),
        (b'{"name": "", "prompt": "p"}', "name"),
    ],
)
def test_create_agent_errors_name_the_field(raw: bytes, field: str) -> None:
    assert _fails(raw, CreateAgent).field == field


class Inner(msgspec.Struct, forbid_unknown_fields=True):
    x: int


class Outer(msgspec.Struct):
    inner: Inner
    items: list[Inner] = []


def test_field_of_nested_paths() -> None:
    def err(raw: bytes) -> str:
        with pytest.raises(msgspec.ValidationError) as info:
            msgspec.json.decode(raw, type=Outer)
        return field_of(info.value)

    assert err(b'{"inner": {}}') == "inner.x"
    assert err(b'{"inner": {"x": "s"}}') == "inner.x"
    assert err(b'{"inner": {"x": 1, "y": 2}}') == "inner.y"
    assert err(b'{"inner": {"x": 1}, "items": [{"x": "no"}]}') == "items.x"


def test_query_helpers() -> None:
    assert query_bool({"live": "true"}, "live") is True
    assert query_bool({"live": "0"}, "live") is False
    assert query_bool({}, "live") is None
    with pytest.raises(InputError) as info:
        query_bool({"live": "maybe"}, "live")
    assert (info.value.field, info.value.status) == ("live", 400)

    assert query_int({}, "limit", 50, 1, 1000) == 50
    assert query_int({"limit": "7"}, "limit", 50, 1, 1000) == 7
    for bad in ("0", "1001", "-1", "x", "1e3", ""):
        with pytest.raises(InputError) as info:
            query_int({"limit": bad}, "limit", 50, 1, 1000)
        assert info.value.field == "limit"

    assert query_str({"number": "+14155550100"}, "number", r"^\+[1-9][0-9]{1,14}$")
    with pytest.raises(InputError):
        query_str({"number": "+14155550100\n"}, "number", r"^\+[1-9][0-9]{1,14}$")

    check_unknown_params({"live": "1"}, ("live",))
    with pytest.raises(InputError) as info:
        check_unknown_params({"lve": "1"}, ("live",))
    assert (info.value.field, info.value.status) == ("lve", 400)
