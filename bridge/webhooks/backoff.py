"""When a failed delivery is tried again: exponential backoff with jitter, bounded.

Pure: the random draw is passed in, so tests pin it.  Attempt ``n`` (1 = the first
attempt, which just failed) waits ``base * 2^(n-1)``, capped at ``max``, then scaled by
a factor in [0.5, 1.0] ("equal jitter"): receivers that came back after an outage are
not hit by every bridge's retries in the same second, and no wait shrinks below half.
"""

from __future__ import annotations

from typing import Final

MAX_EXPONENT: Final = 30  # 2^30 * any sane base is already past every cap


def retry_delay(attempt: int, base_s: float, max_s: float, draw: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (>= 1); ``draw`` in [0, 1)."""
    exp = min(max(attempt, 1) - 1, MAX_EXPONENT)
    ceiling = min(base_s * 2.0**exp, max_s)
    return ceiling * (0.5 + 0.5 * draw)
