"""Distribution summaries: nearest-rank percentiles, computed once at the end.

Nearest-rank (the smallest value with at least q% of samples at or below it) never
reports a latency that no frame actually had, and it is conservative for tails: with
fewer than 100 samples the p99 is the maximum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np


class Summary(msgspec.Struct, frozen=True):
    count: int
    mean: float
    min: float
    p50: float
    p95: float
    p99: float
    max: float


def percentile(sorted_values: Sequence[float] | np.ndarray, q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    rank = max(1, math.ceil(q / 100 * n))
    return float(sorted_values[rank - 1])


def summarize(values: Sequence[float] | np.ndarray) -> Summary | None:
    """Count, mean, min, p50/p95/p99 and max; ``None`` when there are no values."""
    arr = np.sort(np.asarray(values, dtype=np.float64))
    if arr.size == 0:
        return None
    return Summary(
        count=int(arr.size),
        mean=float(arr.mean()),
        min=float(arr[0]),
        p50=percentile(arr, 50),
        p95=percentile(arr, 95),
        p99=percentile(arr, 99),
        max=float(arr[-1]),
    )


def scaled(summary: Summary | None, factor: float) -> Summary | None:
    """The same summary in other units (seconds → milliseconds: ``factor=1000``)."""
    if summary is None:
        return None
    return Summary(
        count=summary.count,
        mean=summary.mean * factor,
        min=summary.min * factor,
        p50=summary.p50 * factor,
        p95=summary.p95 * factor,
        p99=summary.p99 * factor,
        max=summary.max * factor,
    )
