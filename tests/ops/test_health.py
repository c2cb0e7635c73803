"""``/healthz``, ``/readyz`` and ``/metrics`` of a running app, and the readiness rule."""

from __future__ import annotations

import logging

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import TwilioConfig
from bridge.ops.health import readiness, security_warnings
from bridge.platform.reachability import UpstreamHealth
from bridge.store import Store
from tests.faults.conftest import fault_bridge
from tests.fixtures.bridge import eventually, metric
from tests.fixtures.platform_emulator import PlatformEmulator


def test_readiness_names_every_check() -> None:
    up = UpstreamHealth()
    with Store(":memory:") as store:
        r = readiness(draining=False, store=store, upstream=up, stale_s=30)
        assert not r.ready
        assert r.checks == {
            "draining": "ok",
            "store": "ok",
            "upstream": "the platform has not answered yet",
        }
        up.ok()
        assert readiness(draining=False, store=store, upstream=up, stale_s=30).ready
        r = readiness(draining=True, store=store, upstream=up, stale_s=30)
        assert not r.ready and r.checks["draining"] == "draining for shutdown"
        assert r.body() == {"ready": False, "checks": r.checks, "warnings": {}}


async def test_endpoints_of_a_running_bridge(platform_emulator: PlatformEmulator) -> None:
    async with (
        fault_bridge(platform_emulator) as e2e,
        httpx.AsyncClient(base_url=e2e.server.http_url) as http,
    ):
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        # The probe reaches the emulator at start-up: ready.
        await eventually(lambda: e2e.app.state.services.upstream.last_ok is not None)
        r = await http.get("/readyz")
        assert r.status_code == 200 and r.json()["ready"] is True
        page = await http.get("/metrics")
        assert page.headers["content-type"].startswith("text/plain")
        samples = {
            s.name: s.value
            for f in text_string_to_metric_families(page.text)
            for s in f.samples
            if not s.labels
        }
        assert samples["bridge_ready"] == 1
        assert samples["bridge_draining"] == 0
        assert samples["bridge_active_calls"] == 0
        assert samples["bridge_asyncio_tasks"] >= 3  # server, lifespan, probe at least
        assert samples["bridge_open_sockets"] >= 1  # the listening socket at least
        assert samples["process_resident_memory_bytes"] > 0
        assert "process_cpu_seconds_total" in samples  # what loadtest --target reads
        e2e.app.state.ops.drain.begin()  # as SIGTERM does
        r = await http.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["draining"] != "ok"
        assert (await http.get("/healthz")).status_code == 200  # draining is not dead


async def test_not_ready_when_the_platform_stops_answering(
    platform_emulator: PlatformEmulator,
) -> None:
    async with (
        fault_bridge(
            platform_emulator, ops={"upstream_stale_s": 0.3, "upstream_probe_interval_s": 0}
        ) as e2e,
        httpx.AsyncClient(base_url=e2e.server.http_url) as http,
    ):
        up = e2e.app.state.services.upstream
        assert (await http.get("/readyz")).status_code == 503  # no probe: nothing answered
        up.ok()  # an agent socket opened
        assert (await http.get("/readyz")).status_code == 200
        await eventually(lambda: not up.reachable(0.3))
        r = await http.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["upstream"].startswith("no answer from the platform")


def test_security_warnings_name_signatures_that_are_not_checked() -> None:
    assert security_warnings(TwilioConfig(auth_token="t")) == {}
    off = security_warnings(TwilioConfig(auth_token="t", validate_signatures=False))
    assert "BRIDGE_VALIDATE_TWILIO_SIGNATURES=false" in off["twilio_signatures"]
    implicit = security_warnings(TwilioConfig())
    assert "no Twilio auth token" in implicit["twilio_signatures"]
    with Store(":memory:") as store:
        up = UpstreamHealth()
        up.ok()
        r = readiness(draining=False, store=store, upstream=up, stale_s=30, warnings=implicit)
        assert r.ready and r.body()["warnings"] == implicit  # a warning is not unready


async def test_signatures_state_on_readyz_metrics_and_log(
    platform_emulator: PlatformEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.app")
    async with (
        fault_bridge(platform_emulator) as e2e,
        httpx.AsyncClient(base_url=e2e.server.http_url) as http,
    ):
        assert (await http.get("/readyz")).json()["warnings"] == {}
        assert metric(e2e.app, "bridge_twilio_signatures_enforced") == 1
    assert not [r for r in caplog.records if r.getMessage() == "bridge.insecure"]
    # Loopback dev mode: no token, signatures off without being asked: still said.
    dev = {"TWILIO_AUTH_TOKEN": "", "BRIDGE_PUBLIC_URL": "http://127.0.0.1:8080"}
    async with (
        fault_bridge(platform_emulator, **dev) as e2e,
        httpx.AsyncClient(base_url=e2e.server.http_url) as http,
    ):
        await eventually(lambda: e2e.app.state.services.upstream.last_ok is not None)
        r = await http.get("/readyz")
        assert r.status_code == 200
        assert "no Twilio auth token" in r.json()["warnings"]["twilio_signatures"]
        assert metric(e2e.app, "bridge_twilio_signatures_enforced") == 0
    [warning] = [r for r in caplog.records if r.getMessage() == "bridge.insecure"]
    assert warning.levelno == logging.WARNING
