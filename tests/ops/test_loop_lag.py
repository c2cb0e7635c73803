"""The event-loop lag monitor: a deliberately held loop shows on /metrics."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, Histogram

from bridge.ops.loop_lag import LagRecorder
from tests.faults.conftest import fault_bridge
from tests.fixtures.bridge import eventually, metric
from tests.fixtures.platform_emulator import PlatformEmulator


def _recorder() -> tuple[LagRecorder, CollectorRegistry]:
    r = CollectorRegistry()
    hist = Histogram("lag_seconds", "lag", buckets=(0.01, 0.1, 1.0), registry=r)
    return LagRecorder(hist, Gauge("lag_max_seconds", "worst", registry=r)), r


def test_the_gauge_keeps_the_worst_and_the_histogram_every_lateness() -> None:
    rec, r = _recorder()
    for lag in (0.002, 0.4, 0.05, -0.0001):
        rec.record(lag)
    assert r.get_sample_value("lag_max_seconds") == 0.4
    assert r.get_sample_value("lag_seconds_count") == 4
    # The early wake-up counts as no lag, not a negative one.
    assert r.get_sample_value("lag_seconds_bucket", {"le": "0.01"}) == 2
    assert r.get_sample_value("lag_seconds_sum") == pytest.approx(0.452)


async def test_a_held_loop_shows_on_metrics(platform_emulator: PlatformEmulator) -> None:
    async with fault_bridge(platform_emulator) as e2e:
        app = e2e.app
        assert any(t.get_name() == "loop-lag" for t in asyncio.all_tasks())
        # The monitor is running: samples arrive while nothing holds the loop.
        await eventually(lambda: metric(app, "bridge_event_loop_lag_seconds_count") >= 2)
        before = metric(app, "bridge_event_loop_lag_seconds_count")
        time.sleep(0.3)  # noqa: ASYNC251 - holding the app's loop is the point
        await eventually(lambda: metric(app, "bridge_event_loop_lag_max_seconds") >= 0.25)
        assert metric(app, "bridge_event_loop_lag_seconds_count") > before
        assert (
            metric(app, "bridge_event_loop_lag_seconds_bucket", le="+Inf")
            - metric(app, "bridge_event_loop_lag_seconds_bucket", le="0.1")
            >= 1
        )
        # And it is what a scrape shows.
        async with httpx.AsyncClient(trust_env=False) as client:
            resp = await client.get(e2e.server.http_url + "/metrics")
        assert resp.status_code == 200
        line = next(
            ln
            for ln in resp.text.splitlines()
            if ln.startswith("bridge_event_loop_lag_max_seconds ")
        )
        assert float(line.split()[1]) >= 0.25
    # Stopped with the app: no monitor left behind.
    await asyncio.sleep(0)
    assert not any(t.get_name() == "loop-lag" for t in asyncio.all_tasks())
