"""Helpers for the store tests: a file database per test, bounded waits, log capture."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.store import Store


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
    return str(tmp_path / "bridge.db")


@pytest.fixture
def store(db_path: str) -> Iterator[Store]:
    s = Store(db_path, linger_s=0)
    yield s
    s.close()


@pytest.fixture
def locker(db_path: str) -> Iterator[sqlite3.Connection]:
    """A second connection to the same file, to take locks on it like another process."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()
