"""The PostgreSQL test fixtures: throwaway databases, and skips that CI turns into failures."""

from __future__ import annotations

import psycopg
import pytest

from tests.fixtures import postgres as pg


def test_without_postgres_a_test_is_skipped_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pg.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL: no initdb"):
        pg.unavailable("no initdb")


def test_under_bridge_require_postgres_the_skip_is_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(pg.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL required"):
        pg.unavailable("no initdb")


def test_a_dsn_given_but_unreachable_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pg.REQUIRE_ENV, raising=False)
    monkeypatch.setenv(pg.DSN_ENV, f"postgresql://postgres@127.0.0.1:{pg.free_port()}/postgres")
    with pytest.raises(pytest.skip.Exception, match="does not answer"), pg._some_server():
        pass


def test_each_test_gets_an_empty_schema_of_its_own(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()
        assert schema is not None and schema[0].startswith("t_")
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", schema
        ).fetchone()
        assert tables == (0,)
