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


def test_a_live_entry_is_never_overwritten_nor_removed_by_another_call() -> None:
    calls = LiveCalls()
    first = RecordingCall(call_sid="CA9")
    second = RecordingCall(call_sid="CA9")
    assert calls.add(first) is True
    assert calls.add(second) is False
    assert calls.get("CA9") is first
    calls.remove("CA9", second)  # the impostor leaving takes nothing with it
    assert calls.get("CA9") is first
    calls.remove("CA9", first)
    assert calls.get("CA9") is None


def test_claimed_keys_are_single_use_until_their_retention_ends() -> None:
    calls = LiveCalls()
    assert calls.claim(["call:CA1", "token:t1"], now=0.0, retain_s=10.0) is True
    assert calls.claim(["call:CA1", "token:t2"], now=1.0, retain_s=10.0) is False  # same call
    assert calls.claim(["call:CA2", "token:t1"], now=1.0, retain_s=10.0) is False  # same token
    assert calls.claim(["call:CA2", "token:t2"], now=1.0, retain_s=10.0) is True
    assert calls.claim(["call:CA1", "token:t3"], now=10.5, retain_s=10.0) is True  # forgotten
