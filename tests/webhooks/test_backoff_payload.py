"""Pure parts: the retry schedule and the call.ended document."""

from __future__ import annotations

import msgspec

from bridge.store import CallRecord
from bridge.webhooks.backoff import retry_delay
from bridge.webhooks.payload import NO_EXTRAS, CallExtras, build


def test_backoff_doubles_is_capped_and_jittered_within_half() -> None:
    assert retry_delay(1, 5.0, 3600.0, draw=0.999999) < 5.0
    assert retry_delay(1, 5.0, 3600.0, draw=0.0) == 2.5
    assert retry_delay(2, 5.0, 3600.0, draw=0.0) == 5.0
    assert retry_delay(3, 5.0, 3600.0, draw=0.0) == 10.0
    # capped: attempt 20 would be 5 * 2^19 s
    assert retry_delay(20, 5.0, 3600.0, draw=0.0) == 1800.0
    assert retry_delay(20, 5.0, 3600.0, draw=0.999999) < 3600.0
    assert retry_delay(10_000, 5.0, 3600.0, draw=0.5) == 2700.0  # no overflow
    assert retry_delay(0, 5.0, 3600.0, draw=0.0) == 2.5  # never below the first wait


def test_payload_carries_the_record_as_the_admin_api_does() -> None:
    rec = CallRecord(
        call_sid="CA1",
        from_number="+14155550111",
        to_number="+14155550100",
        status="completed",
        started_at=1.5,
        end_reason="caller_hangup",
    )
    body = build("whd_1", 2.0, rec, NO_EXTRAS)
    doc = msgspec.json.decode(body)
    assert doc["event"] == "call.ended" and doc["version"] == 1
    assert doc["delivery_id"] == "whd_1" and doc["created_at"] == 2.0
    # GET /admin/calls/{sid} encodes the same Struct with the same encoder
    assert doc["call"] == msgspec.json.decode(msgspec.json.encode(rec))
    assert doc["transcript"] is None and doc["latency"] is None
    assert doc["recording_url"] is None


def test_payload_fills_extras_when_a_provider_has_them() -> None:
    rec = CallRecord(call_sid="CA2")
    extras = CallExtras(
        transcript=[{"t": 0.5, "role": "agent", "text": "Hello"}],
        latency={"median_ms": 412.0},
        recording_url="https://bridge.example.com/admin/calls/CA2/recording",
    )
    doc = msgspec.json.decode(build("whd_2", 3.0, rec, extras))
    assert doc["transcript"] == [{"t": 0.5, "role": "agent", "text": "Hello"}]
    assert doc["latency"] == {"median_ms": 412.0}
    assert doc["recording_url"].endswith("/admin/calls/CA2/recording")
