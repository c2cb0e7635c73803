from __future__ import annotations

import math

import numpy as np
import pytest

from bridge.telephony.limits import (
    DurationLimit,
    DurationWarning,
    LimitReached,
    SilenceWatch,
    rms_dbfs,
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
    assert rms_dbfs(full) == pytest.approx(-3.01, abs=0.05)
    assert rms_dbfs(np.zeros(160)) == -math.inf
    assert rms_dbfs(np.array([], dtype=np.int16)) == -math.inf
    # Little-endian PCM bytes (what G.711 decoding gives) read the same as the array.
    pcm = full.astype("<i2")
    assert rms_dbfs(pcm.tobytes()) == pytest.approx(rms_dbfs(pcm), abs=0.01)


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
