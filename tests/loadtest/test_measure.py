"""Classifying and timing a call from the synthetic caller's records (pure)."""

from __future__ import annotations

import pytest

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult, Received, SentFrame, StreamRecord
from bridge.emulator.twilio.script import ScriptEvent
from bridge.loadtest.measure import barge_in_delays, classify, send_lag_p99_ms
from bridge.loadtest.model import CallOutcome


def _result(stream: StreamRecord | None, outcome=Outcome.COMPLETED, reason="") -> CallResult:
    res = CallResult("CA1", "AC1", "inbound", "+1", "+2", speed=1.0, t0=0.0)
    res.outcome, res.reason = outcome, reason
    if stream is not None:
        res.streams.append(stream)
    return res


def _stream(ended_by: str, error: str | None = None) -> StreamRecord:
    s = StreamRecord("wss://x/m", "ws://x/m", "MZ1", {}, started_at=1.0, ended_at=5.0)
    s.ended_by, s.error, s.close_code = ended_by, error, 1000
    return s


def test_outcomes_and_reasons():
    r = _result(None, Outcome.FAILED, "webhook: HTTP 503")
    assert classify(r, None, "loopback", False) == (
        CallOutcome.FAILED_TO_CONNECT,
        "webhook: HTTP 503",
    )
    s = _stream("handshake", "handshake refused: HTTP 403")
    assert classify(_result(s), s, "loopback", False)[0] is CallOutcome.FAILED_TO_CONNECT
    s = _stream("caller")
    assert classify(_result(s), s, "loopback", True) == (CallOutcome.COMPLETED, "caller hung up")
    s = _stream("bridge")
    outcome, why = classify(_result(s), s, "loopback", False)
    assert outcome is CallOutcome.FAILED_TO_CONNECT and why.startswith("no agent audio")
    outcome, why = classify(_result(s), s, "loopback", True)
    assert outcome is CallOutcome.DROPPED and "bridge ended the stream" in why
    s = _stream("error", "protocol error from server: bad frame")
    assert classify(_result(s), s, "echo", True) == (
        CallOutcome.DROPPED,
        "error ended the stream: protocol error from server: bad frame",
    )


def test_barge_in_to_the_next_clear():
    s = _stream("caller")
    s.received += [Received(2.05, "clear"), Received(4.5, "clear")]
    r = _result(s)
    r.script_events = [
        ScriptEvent(2.0, "barge-in", "b"),
        ScriptEvent(3.0, "talk-start", "x"),
        ScriptEvent(4.4, "barge-in", "b"),
        ScriptEvent(4.9, "barge-in", "never cleared"),
    ]
    assert barge_in_delays(r, s) == pytest.approx((50.0, 100.0))


def test_send_lag_is_lateness_against_the_20ms_schedule():
    s = _stream("caller")
    # frames due at 1.00, 1.02, 1.04, …; the fourth went out 30 ms late
    s.frames = [
        SentFrame(1.0 + 0.02 * k + (0.03 if k == 3 else 0.0), 160 * k, 160) for k in range(10)
    ]
    assert send_lag_p99_ms(_result(s), s) == pytest.approx(30.0)
    assert send_lag_p99_ms(_result(None), None) is None
