"""The call-record writer when the database is locked, full or gone: calls never wait.

Lock and hard-error cases run on both backends; a full disk is SQLite's own case (the
server going away is PostgreSQL's: tests/faults/test_postgres_outage.py)."""

from __future__ import annotations

import logging
import sqlite3
import threading

import pytest
from prometheus_client import CollectorRegistry

from bridge.store import CallRecord, Store
from bridge.store.schema import connect, migrate
from bridge.store.sqlite import DbHandle
from bridge.store.writer import CallWriter

from .conftest import Locker, events, wait_until


def _metric(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


def _fast_retry_store(path: str, **kw: object) -> Store:
    return Store(
        path,
        writer_busy_timeout_s=0.02,
        retry_initial_s=0.005,
        retry_max_s=0.02,
        linger_s=0,
        **kw,  # type: ignore[arg-type]
    )


def test_locked_database_queues_alarms_once_and_recovers(
    db: str, locker: Locker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.store")
    registry = CollectorRegistry()
    store = _fast_retry_store(db, registry=registry)
    locker.hold()  # another process holds the write lock

    for i in range(20):
        assert store.record_call(CallRecord(call_sid=f"CA{i}", status="in-progress"))
        assert store.update_call(f"CA{i}", bytes_in=160 * i)
        # Returned while the lock is still held: the call path never waited on the db.
        assert locker.held
    assert store.pending_writes == 20

    wait_until(lambda: store.write_failures >= 3)  # several retries, one streak
    assert not store.healthy
    assert locker.held
    [alarm] = events(caplog, "store.write_failing", logging.ERROR)
    assert "lock" in alarm.bridge_fields["error"]  # type: ignore[attr-defined]
    assert alarm.bridge_fields["db"] == store.label  # type: ignore[attr-defined]
    assert "password" not in store.label
    assert _metric(registry, "bridge_store_write_failures_total") >= 3
    assert _metric(registry, "bridge_store_pending_writes") == 20
    # Read-your-writes while nothing reached the disk.
    got = store.get_call("CA7")
    assert got is not None and got.bytes_in == 1120
    assert len(store.list_calls(live=True).items) == 20
    assert locker.one("SELECT count(*) FROM calls") == (0,)

    locker.release()
    assert store.flush(timeout_s=10)
    assert store.healthy
    assert store.pending_writes == 0
    assert locker.one("SELECT count(*), sum(bytes_in) FROM calls") == (
        20,
        160 * sum(range(20)),
    )
    [recovered] = events(caplog, "store.write_recovered")
    assert recovered.bridge_fields["failed_attempts"] >= 3  # type: ignore[attr-defined]
    assert len(events(caplog, "store.write_failing")) == 1
    store.close()


def test_a_second_streak_alarms_again(
    db: str, locker: Locker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.store")
    store = _fast_retry_store(db)
    for streak in range(2):
        locker.hold()
        store.record_call(CallRecord(call_sid=f"CA{streak}"))
        wait_until(lambda: not store.healthy)
        locker.release()
        assert store.flush(timeout_s=10)
    assert len(events(caplog, "store.write_failing", logging.ERROR)) == 2
    assert len(events(caplog, "store.write_recovered")) == 2
    store.close()


def test_full_disk_queues_until_space_is_freed(
    db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The volume is full (SQLITE_FULL): records wait; pruning old calls frees space."""
    caplog.set_level(logging.INFO, logger="bridge.store")
    blob = ({"note": "x" * 2000},)  # a row that needs pages of its own
    with Store(db_path) as s:
        for i in range(40):
            s.record_call(CallRecord(call_sid=f"CA_old{i}", ended_at=1.0, events=blob))
    probe = sqlite3.connect(db_path)
    size_now = (
        probe.execute("PRAGMA page_count").fetchone()[0]
        * probe.execute("PRAGMA page_size").fetchone()[0]
    )
    probe.close()

    store = _fast_retry_store(db_path, max_db_bytes=size_now)  # not one page more
    for i in range(10):
        assert store.record_call(
            CallRecord(call_sid=f"CA_new{i}", started_at=float(i), events=blob)
        )
    wait_until(lambda: store.write_failures >= 2)
    assert not store.healthy
    assert store.pending_writes == 10
    [alarm] = events(caplog, "store.write_failing", logging.ERROR)
    assert "full" in alarm.bridge_fields["error"]  # type: ignore[attr-defined]
    assert store.get_call("CA_new3") is not None  # still served from the queue

    assert store.prune_calls(ended_before=2.0) == 40  # operator frees space
    assert store.flush(timeout_s=10)
    assert store.healthy
    assert [r.call_sid for r in store.list_calls(limit=100).items] == [
        f"CA_new{i}" for i in reversed(range(10))
    ]
    store.close()


def test_queue_overflow_drops_new_calls_counts_and_logs_once(
    db: str, locker: Locker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.store")
    registry = CollectorRegistry()
    store = _fast_retry_store(db, max_pending_writes=5, registry=registry)
    locker.hold()
    accepted = [store.record_call(CallRecord(call_sid=f"CA{i}")) for i in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    # Updates to calls already queued fold into their entry: still accepted.
    assert store.update_call("CA0", status="completed")
    assert not store.update_call("CA7", status="completed")
    assert store.dropped_writes == 4
    assert _metric(registry, "bridge_store_dropped_writes_total") == 4
    assert not store.healthy
    assert len(events(caplog, "store.queue_overflow", logging.ERROR)) == 1

    locker.release()
    assert store.flush(timeout_s=10)
    assert store.healthy
    assert sorted(r.call_sid for r in store.list_calls().items) == [f"CA{i}" for i in range(5)]
    got = store.get_call("CA0")
    assert got is not None and got.status == "completed"
    store.close()


def test_close_while_locked_gives_up_after_its_timeout(
    db: str, locker: Locker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.store")
    store = _fast_retry_store(db)
    locker.hold()
    for i in range(3):
        store.record_call(CallRecord(call_sid=f"CA{i}"))
    assert store.close(timeout_s=0.2) == 3
    [lost] = events(caplog, "store.close_unwritten", logging.ERROR)
    assert lost.bridge_fields["unwritten"] == 3  # type: ignore[attr-defined]
    assert locker.held


def test_writer_recovers_from_a_hard_error(
    db: str, locker: Locker, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-lock error (here: the calls table vanished for a while) is retried too."""
    caplog.set_level(logging.INFO, logger="bridge.store")
    store = _fast_retry_store(db)
    store.record_call(CallRecord(call_sid="CA0"))
    assert store.flush()
    locker.run("ALTER TABLE calls RENAME TO calls_moved")
    store.record_call(CallRecord(call_sid="CA1"))
    wait_until(lambda: store.write_failures >= 2)
    error = events(caplog, "store.write_failing")[0].bridge_fields["error"]  # type: ignore[attr-defined]
    assert ('relation "calls" does not exist' if locker.postgres else "no such table") in error
    locker.run("ALTER TABLE calls_moved RENAME TO calls")
    assert store.flush(timeout_s=10)
    assert locker.one("SELECT count(*) FROM calls") == (2,)
    store.close()


class _Gate:
    """A stand-in for the handle lock: the n-th acquisition waits for the test."""

    def __init__(self, block_at: int) -> None:
        self.count = 0
        self.block_at = block_at
        self.reached = threading.Event()
        self.release = threading.Event()

    def __enter__(self) -> None:
        self.count += 1
        if self.count == self.block_at:
            self.reached.set()
            assert self.release.wait(10)

    def __exit__(self, *exc: object) -> None:
        pass


def test_a_call_changed_during_its_write_goes_to_the_back_of_the_queue() -> None:
    conn = connect(":memory:", busy_timeout_s=1)
    migrate(conn)
    first_write, second_write = _Gate(block_at=1), _Gate(block_at=2)

    class Gated:
        def __enter__(self) -> None:
            first_write.__enter__()
            second_write.__enter__()

        def __exit__(self, *exc: object) -> None:
            pass

    writer = CallWriter(
        lambda: DbHandle(conn, Gated(), owned=False),  # type: ignore[arg-type]
        db_label="mem",
        batch_size=2,
        linger_s=0,
    )
    writer.submit("CA0", record=CallRecord(call_sid="CA0"))
    assert first_write.reached.wait(10)  # the writer holds a batch of [CA0], mid-write
    for i in (1, 2, 3):
        writer.submit(f"CA{i}", record=CallRecord(call_sid=f"CA{i}"))
    writer.submit("CA0", fields={"status": "completed"})
    first_write.release.set()
    assert second_write.reached.wait(10)  # first batch committed, second one mid-write
    assert list(writer.pending_snapshot()) == ["CA1", "CA2", "CA3", "CA0"]
    second_write.release.set()
    assert writer.flush(10)
    assert conn.execute("SELECT status FROM calls WHERE call_sid = 'CA0'").fetchone() == (
        "completed",
    )
    assert writer.close(5) == 0
    conn.close()
