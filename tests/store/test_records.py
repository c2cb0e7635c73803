from __future__ import annotations

import msgspec
import pytest

from bridge.errors import InputError
from bridge.store import CallRecord, NumberRecord
from bridge.store.records import validate_call, validate_call_fields, validate_number


def test_number_record_json_round_trip() -> None:
    rec = NumberRecord(
        number="+14155550100",
        phone_number_id="pn_1",
        label="support",
        provider="sip_trunk",
        agent_id="agent_a",
        dynamic_variables={"team": "support"},
        fallback_number="+14155550199",
    )
    assert msgspec.json.decode(msgspec.json.encode(rec), type=NumberRecord) == rec


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"number": "4155550100"}, "number"),
        ({"number": "+0155"}, "number"),
        ({"provider": "vonage"}, "provider"),
        ({"fallback_number": "call me"}, "fallback_number"),
        ({"dynamic_variables": {"k": 1}}, "dynamic_variables"),
    ],
)
def test_invalid_number_names_the_field(changes: dict[str, object], field: str) -> None:
    rec = msgspec.structs.replace(NumberRecord(number="+14155550100"), **changes)
    with pytest.raises(InputError) as e:
        validate_number(rec)
    assert e.value.field == field


def test_valid_records_pass_unchanged() -> None:
    rec = NumberRecord(number="+14155550100", agent_id="a")
    assert validate_number(rec) == rec
    call = CallRecord(call_sid="CA1", events=({"at": 1.0, "event": "dtmf"},))
    assert validate_call(call) == call


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"call_sid": ""}, "call_sid"),
        ({"status": "done"}, "status"),
        ({"direction": "sideways"}, "direction"),
        ({"bytes_in": -1}, "bytes_in"),
        ({"started_at": "yesterday"}, "started_at"),
    ],
)
def test_invalid_call_names_the_field(changes: dict[str, object], field: str) -> None:
    rec = msgspec.structs.replace(CallRecord(call_sid="CA1"), **changes)
    with pytest.raises(InputError) as e:
        validate_call(rec)
    assert e.value.field == field


def test_call_field_updates_are_checked() -> None:
    assert validate_call_fields({"status": "completed", "bytes_out": 3}) == {
        "status": "completed",
        "bytes_out": 3,
    }
    with pytest.raises(InputError) as e:
        validate_call_fields({"colour": "red"})
    assert e.value.field == "colour"
    with pytest.raises(InputError) as e:
        validate_call_fields({"call_sid": "CA2"})
    assert e.value.field == "call_sid"
    with pytest.raises(InputError) as e:
        validate_call_fields({"interruptions": "many"})
    assert e.value.field == "interruptions"


def test_live_follows_status() -> None:
    assert CallRecord(call_sid="CA1", status="in-progress").live
    assert CallRecord(call_sid="CA1", status="ringing").live
    assert not CallRecord(call_sid="CA1", status="no-answer").live
