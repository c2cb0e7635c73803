from __future__ import annotations

import numpy as np
import pytest

from bridge.loadtest.align import EchoResult
from bridge.loadtest.model import (
    CallMeasurement,
    CallOutcome,
    Criteria,
    aggregate,
    judge,
    peak_concurrency,
)
from bridge.loadtest.procstat import Usage

MIB = 1024 * 1024


def _echo(sent: int, lost: int) -> EchoResult:
    return EchoResult(sent, sent - lost, lost, 0, 0, 0, 0, 0, 0.0, 1.9, 35.0)


def _rec(i: int, outcome=CallOutcome.COMPLETED, reason="caller hung up", start=0.0, s=10.0):
    return CallMeasurement(
        index=i,
        phase=0,
        scenario="loopback",
        agent_format="pcm_16000",
        outcome=outcome,
        reason=reason,
        started_at=start,
        ended_at=start + s,
        webhook_ms=3.0,
        first_audio_ms=25.0,
        stream_s=s if outcome is CallOutcome.COMPLETED else 0.0,
        media_sent=500,
        media_received=498,
        bytes_sent=80000,
        bytes_received=79680,
        echo=_echo(450, 0) if outcome is CallOutcome.COMPLETED else None,
    )


def test_peak_concurrency_touching_intervals_do_not_overlap():
    assert peak_concurrency([(0, 10), (10, 20)]) == 1
    assert peak_concurrency([(0, 10), (5, 20), (6, 7)]) == 3
    assert peak_concurrency([]) == 0


def test_aggregate_counts_outcomes_reasons_and_resources():
    recs = [_rec(0), _rec(1, start=2.0), _rec(2, CallOutcome.FAILED_TO_CONNECT, "webhook HTTP 503")]
    bridge = Usage(cpu_s=0.04, rss_start_bytes=100 * MIB, rss_peak_bytes=102 * MIB, samples=10)
    lat = np.array([0.010, 0.012, 0.030])
    ph = aggregate(
        0,
        "pcm_16000",
        3,
        recs,
        lat,
        (0.0, 12.0),
        bridge=bridge,
        emulator=None,
        loadgen=None,
        criteria=Criteria(),
    )
    assert ph.outcomes == {"completed": 2, "failed_to_connect": 1, "dropped": 0}
    assert ph.reasons == {"failed_to_connect: webhook HTTP 503": 1}
    assert ph.integrity.probe_frames_sent == 900 and ph.integrity.probe_frames_lost == 0
    assert ph.integrity.media_sent == 1500
    assert ph.resources.call_seconds == 20.0
    assert ph.resources.peak_concurrent_calls == 2
    assert ph.resources.bridge_cpu_ms_per_call_second == pytest.approx(2.0)  # 40 ms / 20 s
    assert ph.resources.bridge_mib_per_call == pytest.approx(1.0)  # 2 MiB / 2 calls
    assert ph.relay_latency_ms is not None and ph.relay_latency_ms.max == pytest.approx(30.0)
    assert not ph.passed  # a failed call and p99 30 ms > 20 ms
    assert any("failed" in b for b in ph.broken) and any("p99" in b for b in ph.broken)


def test_judge_each_criterion():
    c = Criteria()
    assert judge(c, lost=0, failed=0, p99_ms=19.9, cpu_ms=2.9, latency_expected=True) == ()
    assert len(judge(c, lost=1, failed=1, p99_ms=21, cpu_ms=3.5, latency_expected=True)) == 4
    assert judge(c, lost=0, failed=0, p99_ms=None, cpu_ms=None, latency_expected=True) == (
        "no relay latency measured",
    )
    assert judge(c, lost=0, failed=0, p99_ms=None, cpu_ms=None, latency_expected=False) == ()
