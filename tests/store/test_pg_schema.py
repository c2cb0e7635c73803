"""PostgreSQL's migrations keep SQLite's semantics: versioned, transactional, one step at
a time under a lock, downgrade refused; DSNs never reach a log or an error."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import psycopg
import pytest

from bridge.errors import StoreError
from bridge.store import CallRecord, NumberRecord, Store
from bridge.store.pg_schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from bridge.store.postgres import dsn_label
from tests.fixtures.postgres import free_port, with_params


@pytest.fixture
def conn(postgres_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        yield c


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    return {r[0] for r in rows}


def test_migrates_an_empty_schema_to_the_latest_version(conn: psycopg.Connection) -> None:
    assert schema_version(conn) == 0
    assert migrate(conn, "test") == SCHEMA_VERSION == len(MIGRATIONS)
    assert schema_version(conn) == SCHEMA_VERSION
    assert {"numbers", "calls", "bridge_schema"} <= _tables(conn)
    assert migrate(conn, "test") == 0  # idempotent
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_upgrades_a_version_1_database_keeping_its_rows(
    conn: psycopg.Connection, postgres_dsn: str
) -> None:
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("CREATE TABLE bridge_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
    conn.execute("INSERT INTO bridge_schema VALUES (1, 1)")
    conn.execute(
        "INSERT INTO numbers (number, provider, updated_at) VALUES ('+14155550100', 'twilio', 5)"
    )
    with Store(postgres_dsn) as s:
        rec = s.get_number("+14155550100")
        assert rec is not None and rec.updated_at == 5
        s.record_call(CallRecord(call_sid="CA1"))
        assert s.flush()
    assert schema_version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM calls").fetchone() == (1,)


def test_refuses_a_database_from_a_newer_bridge(
    conn: psycopg.Connection, postgres_dsn: str
) -> None:
    Store(postgres_dsn).close()
    conn.execute("UPDATE bridge_schema SET version = version + 1")
    with pytest.raises(StoreError, match="downgrade refused"):
        Store(postgres_dsn)
    assert schema_version(conn) == SCHEMA_VERSION + 1  # untouched


def test_failed_migration_step_leaves_previous_version(
    conn: psycopg.Connection, postgres_dsn: str
) -> None:
    # A table in the way of step 2 makes it fail; step 1 must stay committed, alone.
    conn.execute("CREATE TABLE calls (x INTEGER)")
    with pytest.raises(StoreError, match="cannot migrate"):
        Store(postgres_dsn)
    assert schema_version(conn) == 1
    assert "numbers" in _tables(conn)
    assert conn.execute("SELECT to_regclass('calls_started')").fetchone() == (None,)


def test_instances_starting_together_migrate_once(
    conn: psycopg.Connection, postgres_dsn: str
) -> None:
    results: list[object] = []

    def open_store() -> None:
        try:
            Store(postgres_dsn).close()
            results.append("ok")
        except Exception as e:  # collected: the assertion below names it
            results.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["ok"] * 4
    assert schema_version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM bridge_schema").fetchone() == (1,)


def test_the_dsn_label_carries_no_password() -> None:
    dsn = "postgresql://bridge:s3cret-pw@db.internal:6432/calls?sslmode=require"
    assert dsn_label(dsn) == "postgresql://bridge@db.internal:6432/calls"
    assert dsn_label("postgresql://db.internal/calls?password=s3cret-pw") == (
        "postgresql://db.internal/calls"
    )


def test_an_invalid_dsn_is_a_store_error_that_does_not_echo_it() -> None:
    with pytest.raises(StoreError) as e:
        Store("postgresql://bridge:s3cret-pw@host/db?nonsense_key=1")
    assert "s3cret-pw" not in str(e.value)
    assert "not a valid PostgreSQL DSN" in str(e.value)


def test_an_unreachable_server_is_a_store_error_at_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dsn = f"postgresql://bridge:s3cret-pw@127.0.0.1:{free_port()}/bridge"
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreError) as e:
        Store(dsn)
    assert "cannot open database postgresql://bridge@127.0.0.1:" in str(e.value)
    assert "s3cret-pw" not in str(e.value)
    assert all("s3cret-pw" not in r.getMessage() for r in caplog.records)


def test_numbers_and_calls_order_as_on_sqlite(postgres_dsn: str) -> None:
    """Byte order ("C" collation), not the server's locale: cursors mean the same."""
    sids = ["CA_b", "CAa", "ca1", "CA-1", "CA\u00e9", "CA B", "CAZ"]
    with Store(with_params(postgres_dsn), linger_s=0) as s:
        for sid in sids:
            s.record_call(CallRecord(call_sid=sid, started_at=1.0))
        for n in ["+1415555010", "+14155550100", "+1415555011"]:
            s.upsert_number(NumberRecord(number=n))
        assert s.flush()
        got: list[str] = []
        cursor = None
        while True:
            page = s.list_calls(limit=2, cursor=cursor)
            got += [r.call_sid for r in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert got == sorted(sids, reverse=True)
        assert [r.number for r in s.list_numbers()] == sorted(
            ["+1415555010", "+14155550100", "+1415555011"]
        )


def test_upgrades_a_version_2_database_its_calls_gain_no_instance(
    conn: psycopg.Connection, postgres_dsn: str
) -> None:
    for step in MIGRATIONS[:2]:
        for statement in step:
            conn.execute(statement)
    conn.execute("CREATE TABLE bridge_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
    conn.execute("INSERT INTO bridge_schema VALUES (1, 2)")
    conn.execute(
        "INSERT INTO calls (call_sid, direction, status, started_at) "
        "VALUES ('CA_old', 'inbound', 'completed', 5)"
    )
    with Store(postgres_dsn, instance="pod-1") as s:
        old = s.get_call("CA_old")
        assert old is not None and old.instance is None and old.started_at == 5
        s.record_call(CallRecord(call_sid="CA_new", stream_sid="MZ1"))
        assert s.flush()
        new = s.get_call("CA_new")
        assert new is not None and new.instance == "pod-1"
    assert schema_version(conn) == SCHEMA_VERSION
