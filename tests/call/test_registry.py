"""LiveCalls: live sessions by CallSid, webhook announcements, after-stream decisions."""

from __future__ import annotations

from bridge.call.actions import HANGUP, Apology, EndReason, Transfer
from bridge.call.registry import LiveCalls
from tests.call.test_tools import RecordingCall


def test_hangup_reaches_the_live_call_at_once() -> None:
    calls = LiveCalls()
    call = RecordingCall(call_sid="CA9", parameters={"called_number": "+14155550100"})
    calls.add(call)
    assert len(calls) == 1 and calls.get("CA9") is call
    assert calls.count_for("+14155550100") == 1
    assert calls.hangup("CA9") is True
    assert call.ended == [(EndReason.ADMIN_HANGUP, HANGUP, False)]
    calls.remove("CA9")
    assert calls.hangup("CA9") is False
    assert len(calls) == 0


def test_expected_calls_are_claimed_once() -> None:
    calls = LiveCalls()
    calls.expect("CA1")
    assert calls.claim_expected("CA1") is True
    assert calls.claim_expected("CA1") is False
    assert calls.claim_expected("CA2") is False


def test_next_steps_are_popped_once_and_bounded() -> None:
    calls = LiveCalls()
    calls.set_next("CA1", Transfer("+14155550199"))
    calls.set_next("CA2", Apology("sorry"))
    assert calls.pop_next("CA1") == Transfer("+14155550199")
    assert calls.pop_next("CA1") is None
    for i in range(10_001):
        calls.set_next(f"CAx{i}", HANGUP)
    assert calls.pop_next("CA2") is None  # the oldest entry was forgotten
    assert calls.pop_next("CAx10000") == HANGUP
