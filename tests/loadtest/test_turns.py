"""The load test's per-turn latency: the bridge's histogram, before and after a phase."""

from __future__ import annotations

import pytest

from bridge.errors import InputError
from bridge.loadtest.turns import StageFigures, describe, figures, merged, parse_buckets, quantile
from bridge.metrics import Metrics


def page(m: Metrics) -> str:
    body, _ = m.render()
    return body.decode()


def test_a_phase_counts_only_its_own_turns() -> None:
    m = Metrics()
    h = m.turn_latency_seconds
    h.labels("agent_audio").observe(5.0)  # before the phase: not its turn
    before = parse_buckets(page(m))
    for v in (0.42, 0.44, 0.46, 0.48, 0.61):
        h.labels("agent_audio").observe(v)
    h.labels("heard").observe(0.47)
    after = parse_buckets(page(m))
    got = figures(before, after)
    assert [s.stage for s in got] == ["agent_audio", "heard"]
    a = got[0]
    assert a.n == 5
    # 0.42, 0.44 in (0.40, 0.45]; 0.46, 0.48 in (0.45, 0.50]: interpolated within them.
    assert 450 <= a.p50_ms <= 500
    assert 600 <= a.p95_ms <= 650
    assert a.max_ms == 650.0  # the upper edge of the bucket holding 0.61
    assert got[1] == StageFigures(stage="heard", n=1, p50_ms=475.0, p95_ms=497.5, max_ms=500.0)
    assert "agent_audio p50" in describe(got) and "max ≤650 ms (n=5)" in describe(got)


def test_bridges_add_up_and_nothing_is_nothing() -> None:
    a, b = Metrics(), Metrics()
    a.turn_latency_seconds.labels("sent").observe(0.3)
    b.turn_latency_seconds.labels("sent").observe(0.3)
    both = merged([parse_buckets(page(a)), parse_buckets(page(b))])
    (sent,) = figures({}, both)
    assert sent.n == 2
    assert figures(both, both) == ()


def test_quantile_beyond_the_last_edge_is_the_last_edge() -> None:
    assert quantile([(1.0, 0.0), (10.0, 0.0), (float("inf"), 4.0)], 0.5) == 10.0
    assert quantile([(0.5, 2.0), (1.0, 4.0), (float("inf"), 4.0)], 0.5) == 0.5


def test_a_page_that_is_not_prometheus_is_an_input_error() -> None:
    with pytest.raises(InputError):
        parse_buckets('bridge_turn_latency_seconds_bucket{stage="sent"} not-a-number\n')
