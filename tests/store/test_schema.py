from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.errors import StoreError
from bridge.store import CallRecord, NumberRecord, Store
from bridge.store.schema import MIGRATIONS, SCHEMA_VERSION, connect, migrate, schema_version
from tests.store.conftest import events


def _one(path: str, sql: str) -> object:
    """One value read through a short-lived connection of its own."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchone()[0]


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrates_an_empty_database_to_the_latest_version() -> None:
    conn = connect(":memory:", busy_timeout_s=1)
    assert schema_version(conn) == 0
    assert migrate(conn) == SCHEMA_VERSION == len(MIGRATIONS)
    assert schema_version(conn) == SCHEMA_VERSION
    assert {"numbers", "calls"} <= _tables(conn)
    assert not conn.in_transaction
    conn.close()


def test_migrate_is_idempotent() -> None:
    conn = connect(":memory:", busy_timeout_s=1)
    migrate(conn)
    assert migrate(conn) == 0
    assert schema_version(conn) == SCHEMA_VERSION
    conn.close()


def test_file_database_is_in_wal_mode(db_path: str) -> None:
    Store(db_path).close()
    assert _one(db_path, "PRAGMA journal_mode") == "wal"
    assert _one(db_path, "PRAGMA user_version") == SCHEMA_VERSION


def test_reopen_keeps_data_and_applies_nothing(db_path: str) -> None:
    with Store(db_path) as s:
        s.upsert_number(NumberRecord(number="+14155550100", agent_id="agent_a"))
        s.record_call(CallRecord(call_sid="CA1", started_at=10.0))
    with Store(db_path) as s:
        assert s.get_number("+14155550100") is not None
        assert s.get_call("CA1") is not None
    conn = connect(db_path, busy_timeout_s=1)
    assert migrate(conn, db_path) == 0
    conn.close()


def test_upgrades_a_version_1_database_keeping_its_rows(db_path: str) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO numbers (number, provider, updated_at) VALUES ('+14155550100', 'twilio', 5)"
    )
    conn.close()
    with Store(db_path) as s:
        rec = s.get_number("+14155550100")
        assert rec is not None and rec.updated_at == 5
        s.record_call(CallRecord(call_sid="CA1"))
        assert s.flush()
    assert _one(db_path, "PRAGMA user_version") == SCHEMA_VERSION
    assert _one(db_path, "SELECT count(*) FROM calls") == 1


def test_refuses_a_database_from_a_newer_bridge(db_path: str) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="downgrade refused"):
        Store(db_path)


def test_failed_migration_step_leaves_previous_version(db_path: str) -> None:
    # A table in the way of step 2 makes it fail; step 1 must stay committed, alone.
    conn = sqlite3.connect(db_path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("CREATE TABLE calls (x)")
    conn.close()
    with pytest.raises(StoreError, match="cannot migrate"):
        Store(db_path)
    assert _one(db_path, "PRAGMA user_version") == 1
    assert _one(db_path, "SELECT count(*) FROM sqlite_master WHERE name = 'calls_started'") == 0


def test_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open database"):
        Store(str(tmp_path / "no" / "such" / "dir" / "bridge.db"))


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    p = tmp_path / "bridge.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a database"):
        Store(str(p))


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (0022): what SQLite alone would create is world-readable."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_database_and_its_wal_and_shm_are_owner_only(db_path: str, open_umask: None) -> None:
    with Store(db_path) as s:
        s.upsert_number(NumberRecord(number="+14155550100", agent_id="agent_a"))
        # While the store is open SQLite keeps its -wal and -shm beside the file.
        files = [db_path, db_path + "-wal", db_path + "-shm"]
        assert {f: _mode(f) for f in files} == {f: 0o600 for f in files}


def test_sqlite_alone_would_create_them_world_readable(db_path: str, open_umask: None) -> None:
    """The baseline the test above relies on: the mode comes from the bridge, not SQLite."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    assert _mode(db_path) == _mode(db_path + "-wal") == 0o644
    conn.close()


def test_an_existing_world_readable_database_is_tightened_and_logged(
    db_path: str, open_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    old = sqlite3.connect(
        db_path, isolation_level=None
    )  # an older bridge's files, -wal and -shm still there
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE t (x)")
    old.execute("INSERT INTO t VALUES (1)")
    files = [db_path, db_path + "-wal", db_path + "-shm"]
    assert {_mode(f) for f in files} == {0o644}
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.store.schema"):
            Store(db_path).close()
    finally:
        old.close()
    assert _mode(db_path) == 0o600
    logged = events(caplog, "store.permissions_tightened", logging.WARNING)
    assert [
        (r.bridge_fields["file"], r.bridge_fields["was"], r.bridge_fields["now"]) for r in logged
    ] == [  # type: ignore[attr-defined]
        (f, "0644", "0600") for f in files
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bridge.store.schema"):
        Store(db_path).close()
    assert events(caplog, "store.permissions_tightened") == []  # once private, nothing to say


def test_upgrades_a_version_2_database_its_calls_gain_no_instance(db_path: str) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    for step in MIGRATIONS[:2]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO calls (call_sid, direction, status, started_at) "
        "VALUES ('CA_old', 'inbound', 'completed', 5)"
    )
    conn.close()
    with Store(db_path, instance="pod-1") as s:
        old = s.get_call("CA_old")
        assert old is not None and old.instance is None and old.started_at == 5
        s.record_call(CallRecord(call_sid="CA_new", stream_sid="MZ1"))
        assert s.flush()
        new = s.get_call("CA_new")
        assert new is not None and new.instance == "pod-1"
    assert _one(db_path, "PRAGMA user_version") == SCHEMA_VERSION
