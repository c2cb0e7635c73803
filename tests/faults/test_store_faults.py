"""The SQLite file locked by someone else: calls keep flowing, records wait and are
written once the lock goes, an alarm is logged, readiness says why."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import httpx
import pytest

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult
from bridge.store import Store
from tests.faults.conftest import fault_bridge
from tests.faults.test_agent_faults import HEALTHY_SCRIPT, assert_healthy, loopback_agent
from tests.fixtures.bridge import BridgeUnderTest, eventually
from tests.fixtures.platform_emulator import PlatformEmulator


async def test_locked_database_calls_flow_records_wait(
    platform_emulator: PlatformEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = platform_emulator
    agent = loopback_agent(p)
    db = str(tmp_path / "bridge.db")
    store = Store(db, writer_busy_timeout_s=0.05, retry_initial_s=0.02, retry_max_s=0.2)
    locker = sqlite3.connect(db, isolation_level=None, timeout=5)
    try:
        async with (
            fault_bridge(p, store=store) as e2e,
            httpx.AsyncClient(base_url=e2e.server.http_url) as http,
        ):
            await eventually(lambda: e2e.app.state.services.upstream.last_ok is not None)
            assert (await http.get("/readyz")).status_code == 200
            numbers = [e2e.number_for(agent) for _ in range(2)]  # (admin writes: before)
            locker.execute("BEGIN EXCLUSIVE")  # another process holds the file
            with caplog.at_level(logging.ERROR, logger="bridge.store"):
                calls = await asyncio.gather(
                    *(e2e.call(agent, HEALTHY_SCRIPT, to=n) for n in numbers)
                )
                for res in calls:
                    assert_healthy_but_unrecorded(e2e, res)
                await eventually(lambda: not store.healthy)
            assert any(r.getMessage() == "store.write_failing" for r in caplog.records)
            assert store.pending_writes >= 2
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert "call-record writes failing" in ready.json()["checks"]["store"]
            locker.execute("ROLLBACK")  # the lock goes: the queue drains by itself
            await eventually(lambda: store.pending_writes == 0 and store.healthy)
            assert (await http.get("/readyz")).status_code == 200
            for res in calls:
                assert_healthy(e2e, res)  # records written, end reasons right
    finally:
        locker.close()
        store.close()


def assert_healthy_but_unrecorded(e2e: BridgeUnderTest, res: CallResult) -> None:
    """While the lock is held the call itself must be perfect (records come later)."""
    assert res.outcome is Outcome.COMPLETED, res.reason
    assert res.stream is not None and len(res.stream.heard) > 0
