"""Webhook tests: a store on each backend, and a real HTTP receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.store import Store

BACKENDS = ["sqlite", "postgres"]


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
