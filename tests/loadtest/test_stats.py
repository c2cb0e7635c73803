from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.loadtest.stats import percentile, scaled, summarize


def test_nearest_rank_percentiles():
    values = list(range(1, 101))  # 1..100
    s = summarize(values)
    assert s is not None
    assert (s.p50, s.p95, s.p99, s.max, s.min, s.count) == (50, 95, 99, 100, 1, 100)
    assert s.mean == pytest.approx(50.5)


def test_small_samples_tail_is_the_maximum():
    s = summarize([3.0, 1.0, 2.0])
    assert s is not None and s.p99 == 3.0 and s.p50 == 2.0


def test_no_values_no_summary_and_bad_q_rejected():
    assert summarize([]) is None
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_scaled_to_milliseconds():
    s = scaled(summarize([0.001, 0.002]), 1000)
    assert s is not None and s.max == pytest.approx(2.0) and s.min == pytest.approx(1.0)
    assert scaled(None, 1000) is None


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200), st.floats(0, 100))
def test_percentile_is_a_sample_and_monotonic(values, q):
    ordered = sorted(values)
    p = percentile(ordered, q)
    assert p in ordered
    assert percentile(ordered, 0) <= p <= percentile(ordered, 100)
