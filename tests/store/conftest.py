"""Helpers for the store tests: a database per test on each backend, bounded waits, log
capture, and a second client that takes the write lock like another process would."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bridge.store import Store
from bridge.store.store import is_postgres

BACKENDS = ["sqlite", "postgres"]


def wait_until(pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``pred`` until true; a bounded wait for a background thread, not a timing check."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def events(
    caplog: pytest.LogCaptureFixture, name: str, level: int | None = None
) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.getMessage() == name and (level is None or r.levelno == level)
    ]


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """A SQLite file (tests of SQLite itself)."""
    return str(tmp_path / "bridge.db")


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``store.db`` for each backend: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("postgres_dsn")
        return dsn
    return str(tmp_path / "bridge.db")


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    s = Store(db, linger_s=0)
    yield s
    s.close()


class Locker:
    """Another client of the same database, holding the write lock like another process.

    SQLite: ``BEGIN EXCLUSIVE`` (reads still work under WAL).  PostgreSQL: ``LOCK TABLE
    calls, numbers IN EXCLUSIVE MODE`` (blocks writes, not plain reads).
    """

    def __init__(self, db: str) -> None:
        self.postgres = is_postgres(db)
        self.conn: Any = (
            psycopg.connect(db, autocommit=True)
            if self.postgres
            else sqlite3.connect(db, isolation_level=None, timeout=5)
        )

    def hold(self) -> None:
        self.conn.execute("BEGIN" if self.postgres else "BEGIN EXCLUSIVE")
        if self.postgres:
            self.conn.execute("LOCK TABLE calls, numbers IN EXCLUSIVE MODE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")

    @property
    def held(self) -> bool:
        if self.postgres:
            return bool(self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)
        return bool(self.conn.in_transaction)

    def one(self, sql: str) -> tuple[Any, ...]:
        row: tuple[Any, ...] = tuple(self.conn.execute(sql).fetchone())
        return row

    def run(self, sql: str) -> None:
        self.conn.execute(sql)

    def close(self) -> None:
        if self.held:
            self.release()
        self.conn.close()


@pytest.fixture
def locker(db: str) -> Iterator[Locker]:
    """A :class:`Locker` on ``db`` (``hold`` once a store has created the tables)."""
    lk = Locker(db)
    yield lk
    lk.close()
