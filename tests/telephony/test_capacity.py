from __future__ import annotations

import dataclasses

from bridge.call.admission import Refusal
from bridge.call.registry import LiveCalls
from bridge.config import TelephonyConfig
from bridge.telephony.capacity import CapacityAdmission
from tests.telephony.fakes import FakeCall, FakeClock

OURS = "+14155550100"


class _Draining:
    def check(self, to_number: str) -> Refusal | None:
        return Refusal("draining")


def test_capacity_counts_holds_until_the_stream_starts_or_they_expire() -> None:
    clock = FakeClock()
    cfg = dataclasses.replace(TelephonyConfig(), max_concurrent_calls_per_number=2)
    calls = LiveCalls()
    cap = CapacityAdmission(cfg, calls, clock=clock, hold_ttl_s=15)
    assert cap.check(OURS) is None
    assert cap.check(OURS) is None
    refused = cap.check(OURS)
    assert refused == Refusal("over_capacity", reject_reason="busy")
    assert cap.count(OURS) == 2
    # A stream starts: it is now a live call instead of a hold (still 2).
    live = FakeCall()
    calls.add(live)
    cap.started(OURS, live.call_sid)
    assert cap.count(OURS) == 2
    # The other caller hung up while ringing: its hold lapses.
    clock.now += 16
    assert cap.count(OURS) == 1
    assert cap.check(OURS) is None


def test_outbound_holds_are_released_by_sid() -> None:
    clock = FakeClock()
    cfg = dataclasses.replace(TelephonyConfig(), max_concurrent_calls=1, over_capacity="message")
    cap = CapacityAdmission(cfg, LiveCalls(), clock=clock)
    cap.hold(OURS, "CA1", ttl_s=60)
    refused = cap.check("+14155550999")
    assert refused is not None and refused.message == cfg.over_capacity_message
    cap.release("CA1")
    assert cap.check("+14155550999") is None


def test_inner_admission_is_asked_first() -> None:
    cap = CapacityAdmission(TelephonyConfig(), LiveCalls(), _Draining())
    assert cap.check(OURS) == Refusal("draining")
    assert cap.count() == 0


def test_a_stream_start_is_counted_against_the_caps_beside_live_calls_and_holds() -> None:
    cfg = dataclasses.replace(TelephonyConfig(), max_concurrent_calls=2)
    calls = LiveCalls()
    cap = CapacityAdmission(cfg, calls, _Draining(), clock=FakeClock())
    # A stream the webhook admitted: its own hold makes way for it.
    cap.hold(OURS, "CA1", ttl_s=60)
    assert cap.admit_stream(OURS, "CA1") is None
    calls.add(FakeCall(call_sid="CA1"))
    # A stream nobody announced still counts (never the drain: it is not asked).
    assert cap.admit_stream(OURS, "CA2") is None
    calls.add(FakeCall(call_sid="CA2"))
    refused = cap.admit_stream(OURS, "CA3")
    assert refused is not None and refused.reason == "over_capacity"
    assert cap.count() == 2


def test_a_stream_start_respects_the_per_number_cap() -> None:
    cfg = dataclasses.replace(TelephonyConfig(), max_concurrent_calls_per_number=1)
    calls = LiveCalls()
    cap = CapacityAdmission(cfg, calls, clock=FakeClock())
    calls.add(FakeCall(call_sid="CA1", parameters={"called_number": OURS}))
    assert cap.admit_stream(OURS, "CA2") is not None
    assert cap.admit_stream("+14155550999", "CA3") is None
