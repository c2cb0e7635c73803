"""How late the event loop runs: the bridge's own measure of a stalled loop.

Every call's audio shares one event loop, so anything that holds it (a huge request
parsed inline, a slow synchronous call) delays every frame of every call by as much.
:func:`lag_loop` sleeps ``interval_s`` over and over and records how much later than
asked each wake-up came: that lateness is the time the loop was held by someone else.

* ``bridge_event_loop_lag_seconds`` (histogram): every wake-up's lateness;
* ``bridge_event_loop_lag_max_seconds`` (gauge): the worst since the process started
  (what the edge benchmark, ``bench/edge_flood.py``, reads).

Cost: one timer every 50 ms, one histogram observation per wake-up.  A stall shorter
than the interval is still seen (the sleep in flight comes back late by as much); two
stalls within one interval count as one.  :class:`LagRecorder` is the pure part (a
lateness in, metrics updated), the loop its only adapter.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Gauge, Histogram

INTERVAL_S = 0.05


class LagRecorder:
    """Where each lateness goes: the histogram, and the gauge when it is a new worst."""

    def __init__(self, histogram: Histogram, worst: Gauge) -> None:
        self.histogram = histogram
        self.worst_gauge = worst
        self.worst = 0.0

    def record(self, lag_s: float) -> None:
        lag_s = max(0.0, lag_s)  # a timer may fire a hair early (clock resolution)
        self.histogram.observe(lag_s)
        if lag_s > self.worst:
            self.worst = lag_s
            self.worst_gauge.set(lag_s)


async def lag_loop(recorder: LagRecorder, interval_s: float = INTERVAL_S) -> None:
    """Measure the loop's lateness every ``interval_s`` (runs until cancelled)."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        recorder.record(loop.time() - due)
