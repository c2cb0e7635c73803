"""The PostgreSQL server goes away and comes back (a throwaway server of our own):
call records queue and are all written afterwards, the writer alarms once and says when
it recovered, reads fail at once instead of waiting, and recover by themselves."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from bridge.errors import StoreError
from bridge.store import CallRecord, NumberRecord, Store
from tests.fixtures.postgres import PgServer, throwaway_server

from .conftest import events, wait_until


@pytest.fixture
def server() -> Iterator[PgServer]:
    with throwaway_server() as s:
        yield s


def _store(dsn: str, registry: CollectorRegistry) -> Store:
    return Store(
        dsn,
        writer_busy_timeout_s=0.2,
        retry_initial_s=0.01,
        retry_max_s=0.2,
        linger_s=0,
        busy_timeout_s=0.5,
        registry=registry,
    )


def _reads_work(store: Store) -> bool:
    try:
        store.list_numbers()
    except StoreError:
        return False
    return True


def test_server_down_and_back(server: PgServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.store")
    registry = CollectorRegistry()
    store = _store(server.dsn, registry)
    store.upsert_number(NumberRecord(number="+14155550100", agent_id="agent_a"))
    store.record_call(CallRecord(call_sid="CA0", status="in-progress", started_at=1.0))
    assert store.flush()

    server.stop()  # clients disconnected at once, as in a failover
    for i in range(1, 21):
        assert store.record_call(CallRecord(call_sid=f"CA{i}", started_at=1.0 + i))
        assert store.update_call(f"CA{i}", status="in-progress", bytes_in=160 * i)
    assert store.update_call("CA0", bytes_in=4242, end_reason="caller_hangup")
    wait_until(lambda: store.write_failures >= 2)
    assert not store.healthy
    assert store.pending_writes == 21
    [alarm] = events(caplog, "store.write_failing", logging.ERROR)
    assert alarm.bridge_fields["db"] == store.label  # type: ignore[attr-defined]
    assert (registry.get_sample_value("bridge_store_write_failures_total") or 0) >= 2

    # Reads: the first finds the server gone, the next ones fail at once without trying.
    with pytest.raises(StoreError, match="cannot read"):
        store.list_numbers()
    with pytest.raises(StoreError, match="database unreachable"):
        store.list_numbers()
    assert len(events(caplog, "store.read_failing", logging.ERROR)) == 1
    # Calls still answer from the queue and from this instance's last view.
    got = store.get_call("CA7")
    assert got is not None and got.bytes_in == 1120
    got = store.get_call("CA0")
    assert got is not None and (got.bytes_in, got.end_reason) == (4242, "caller_hangup")
    with pytest.raises(StoreError):
        store.get_call("CA_never_seen")

    server.start()
    assert store.flush(timeout_s=30)
    assert store.healthy and store.pending_writes == 0
    [recovered] = events(caplog, "store.write_recovered")
    assert recovered.bridge_fields["failed_attempts"] >= 2  # type: ignore[attr-defined]
    wait_until(lambda: _reads_work(store), timeout_s=30)
    assert len(events(caplog, "store.read_recovered")) == 1
    page = store.list_calls(limit=100)
    assert len(page.items) == 21
    assert {r.call_sid: r.bytes_in for r in page.items} == {
        "CA0": 4242,
        **{f"CA{i}": 160 * i for i in range(1, 21)},
    }
    assert store.close() == 0


def test_close_with_the_server_down_reports_what_is_lost(
    server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.store")
    store = _store(server.dsn, CollectorRegistry())
    server.stop()
    for i in range(3):
        store.record_call(CallRecord(call_sid=f"CA{i}"))
    assert store.close(timeout_s=0.3) == 3
    [lost] = events(caplog, "store.close_unwritten", logging.ERROR)
    assert lost.bridge_fields["unwritten"] == 3  # type: ignore[attr-defined]
