from __future__ import annotations

import math

import numpy as np
import pytest

from bridge.emulator.twilio.twiml import Hangup, Reject, Say, parse_twiml
from bridge.telephony.limits import (
    Admission,
    Admitted,
    DurationLimit,
    DurationWarning,
    LimitReached,
    Refused,
    SilenceWatch,
    level_dbfs,
    over_capacity_twiml,
)


def test_duration_warns_then_ends() -> None:
    d = DurationLimit(max_s=60, warn_s=10, started_at=100.0)
    assert d.deadline() == 150.0
    assert d.poll(149.0) == []
    (warn,) = d.poll(150.0)
    assert isinstance(warn, DurationWarning)
    assert warn.remaining_s == 10.0
    assert "10 seconds" in warn.text
    assert d.deadline() == 160.0
    assert d.poll(155.0) == []
    assert d.poll(160.0) == [LimitReached("max_duration", 60.0)]
    assert d.deadline() is None
    assert d.poll(200.0) == []


def test_late_poll_past_the_end_gives_only_the_end() -> None:
    d = DurationLimit(max_s=60, warn_s=10, started_at=0.0)
    assert d.poll(61.0) == [LimitReached("max_duration", 61.0)]


def test_warning_longer_than_the_call_warns_at_once() -> None:
    d = DurationLimit(max_s=5, warn_s=30, started_at=0.0)
    assert d.deadline() == 0.0
    (warn,) = d.poll(0.0)
    assert isinstance(warn, DurationWarning) and warn.remaining_s == 5.0


def test_zero_duration_disables_and_zero_warning_skips_the_warning() -> None:
    assert DurationLimit(0, 10, 0.0).deadline() is None
    assert DurationLimit(0, 10, 0.0).poll(1e9) == []
    d = DurationLimit(30, 0, 0.0)
    assert d.deadline() == 30.0
    assert d.poll(30.0) == [LimitReached("max_duration", 30.0)]


def test_level_dbfs() -> None:
    t = np.arange(8000) / 8000
    full = 32767 * np.sin(2 * np.pi * 1000 * t)
    assert level_dbfs(full) == pytest.approx(-3.01, abs=0.05)
    assert level_dbfs(np.zeros(160)) == -math.inf
    assert level_dbfs(np.array([], dtype=np.int16)) == -math.inf


def test_silence_timeout_counts_from_the_last_loud_enough_audio() -> None:
    s = SilenceWatch(timeout_s=5, threshold_dbfs=-50, started_at=0.0)
    assert s.deadline() == 5.0
    s.heard(-30.0, 2.0)
    assert s.deadline() == 7.0
    s.heard(-60.0, 4.0)  # line noise: does not count
    assert s.deadline() == 7.0
    s.heard_pcm(np.zeros(160, dtype=np.int16), 6.0)
    assert s.poll(6.9) == []
    assert s.poll(7.5) == [LimitReached("silence", 5.5)]
    assert s.deadline() is None
    assert s.poll(10.0) == []


def test_silence_disabled() -> None:
    s = SilenceWatch(0, -50, 0.0)
    assert s.deadline() is None
    assert s.poll(1e6) == []


def test_admission_caps_global_and_per_number_and_is_idempotent() -> None:
    a = Admission(max_global=3, max_per_number=2)
    assert a.admit("CA1", "+1000") == Admitted("CA1", "+1000")
    assert isinstance(a.admit("CA2", "+1000"), Admitted)
    assert a.admit("CA1", "+1000") == Admitted("CA1", "+1000")  # retry: same slot
    refused = a.admit("CA3", "+1000")
    assert refused == Refused("number", 2, "+1000")
    assert "+1000" in refused.reason
    assert isinstance(a.admit("CA4", "+2000"), Admitted)
    refused = a.admit("CA5", "+3000")
    assert refused == Refused("global", 3, "+3000")
    assert "max_concurrent_calls" in refused.reason
    assert a.active() == 3 and a.active("+1000") == 2
    assert a.release("CA1") is True
    assert a.release("CA1") is False
    assert isinstance(a.admit("CA3", "+1000"), Admitted)


def test_no_caps_admit_everything() -> None:
    a = Admission()
    for i in range(100):
        assert isinstance(a.admit(f"CA{i}", "+1000"), Admitted)


def test_expire_forgets_stale_calls() -> None:
    a = Admission(max_global=1)
    a.admit("CA1", None, now=0.0)
    assert isinstance(a.admit("CA2", None, now=10.0), Refused)
    assert a.expire(now=100.0, max_age_s=50.0) == ["CA1"]
    assert "CA1" not in a
    assert isinstance(a.admit("CA2", None, now=100.0), Admitted)


def test_over_capacity_twiml_as_twilio_reads_it() -> None:
    doc = parse_twiml(over_capacity_twiml("reject", "unused"))
    assert doc.verbs == (Reject(reason="busy"),)
    doc = parse_twiml(over_capacity_twiml("message", "Lines busy."))
    assert doc.verbs[0] == Say("Lines busy.")
    assert isinstance(doc.verbs[1], Hangup)
