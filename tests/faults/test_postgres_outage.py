"""The PostgreSQL server stops in the middle of calls and starts again (a throwaway server
of the test's own): calls keep flowing, records queue, an alarm is logged and counted,
readiness says why, and afterwards every record is complete — nothing lost.

Call A is under way when the server stops and ends while it is down (its end is
recorded from the queue and from the store's last view, with no database to read);
call B starts while the server is down and is still under way when it comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry

from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk
from bridge.store import CallRecord, Store
from tests.e2e.conftest import tone_ulaw
from tests.faults.conftest import fault_bridge
from tests.faults.test_agent_faults import assert_healthy, loopback_agent
from tests.fixtures.bridge import eventually, metric
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.postgres import PgServer, throwaway_server

# Call time runs 4x faster than the wall clock (tests.e2e.conftest.SPEED).
SHORT = CallScript.of(
    Pause(0.3), Talk(tone_ulaw(1.2)), Pause(6.0), CallerHangsUp(), max_duration_s=60
)
LONG = CallScript.of(
    Pause(0.3),
    Talk(tone_ulaw(1.2)),
    Pause(24.0),
    Talk(tone_ulaw(1.2)),
    Pause(3.0),
    CallerHangsUp(),
    max_duration_s=90,
)


@pytest.fixture
def server() -> Iterator[PgServer]:
    with throwaway_server() as s:
        yield s


def assert_complete(rec: CallRecord | None, instance: str) -> None:
    """Every field a finished, answered call has: nothing of its life went missing."""
    assert rec is not None
    assert rec.instance == instance  # stamped at stream start, even from the queue
    assert rec.status == "completed" and rec.end_reason == "caller_hangup"
    assert rec.stream_sid and rec.conversation_id and rec.agent_id
    assert rec.answered_at is not None and rec.ended_at is not None
    assert rec.duration_s is not None and rec.duration_s > 0
    assert rec.bytes_in > 8000 and rec.bytes_out > 8000  # both directions of the tone
    assert rec.first_audio_ms is not None


async def test_database_restart_mid_call_loses_nothing(
    platform_emulator: PlatformEmulator, server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.store")
    registry = CollectorRegistry()
    store = Store(
        server.dsn,
        writer_busy_timeout_s=0.2,
        retry_initial_s=0.02,
        retry_max_s=0.3,
        registry=registry,
    )
    agent = loopback_agent(platform_emulator)
    try:
        async with (
            fault_bridge(platform_emulator, store=store) as e2e,
            httpx.AsyncClient(base_url=e2e.server.http_url) as http,
        ):
            await eventually(lambda: e2e.app.state.services.upstream.last_ok is not None)
            numbers = [e2e.number_for(agent) for _ in range(2)]  # (number writes: before)
            call_a = asyncio.create_task(e2e.call(agent, SHORT, to=numbers[0]))
            await eventually(lambda: metric(e2e.app, "bridge_active_calls") == 1)
            assert await asyncio.to_thread(store.flush)  # A is in the database

            await asyncio.to_thread(server.stop)
            call_b = asyncio.create_task(e2e.call(agent, LONG, to=numbers[1]))
            res_a = await call_a  # A ends while the server is down
            await eventually(lambda: metric(e2e.app, "bridge_active_calls") == 1)  # B, live
            await eventually(lambda: not store.healthy)
            assert store.pending_writes >= 2
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert "call-record writes failing" in ready.json()["checks"]["store"]

            await asyncio.to_thread(server.start)
            assert not call_b.done()  # B is still under way when the server is back
            res_b = await call_b
            await eventually(lambda: store.pending_writes == 0 and store.healthy, timeout_s=30)
            assert (await http.get("/readyz")).status_code == 200
            for res in (res_a, res_b):
                assert_healthy(e2e, res)  # audio clean; record written, end reason right
                rec = await asyncio.to_thread(store.get_call, res.call_sid)
                assert_complete(rec, store.instance)
            assert await asyncio.to_thread(lambda: len(store.list_calls().items)) == 2
    finally:
        store.close()
    alarms = [r for r in caplog.records if r.getMessage() == "store.write_failing"]
    assert len(alarms) == 1 and alarms[0].levelno == logging.ERROR
    assert any(r.getMessage() == "store.write_recovered" for r in caplog.records)
    assert (registry.get_sample_value("bridge_store_write_failures_total") or 0) >= 1
