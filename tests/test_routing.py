from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec
import pytest

from bridge.config import Route as StaticRoute
from bridge.config import load_config
from bridge.errors import InputError, PlatformApiError, StoreError
from bridge.routing import PlatformNumber, RoutingTable
from bridge.store import NumberRecord, Store

N1, N2, N3, N4 = "+14155550100", "+14155550101", "+14155550102", "+14155550103"


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "bridge.db")


@pytest.fixture
def store(db_path: str) -> Iterator[Store]:
    s = Store(db_path, busy_timeout_s=0.05, linger_s=0)
    yield s
    s.close()


def _fetch_returning(items: Sequence[PlatformNumber]):  # type: ignore[no-untyped-def]
    calls: list[int] = []

    async def fetch() -> Sequence[PlatformNumber]:
        calls.append(1)
        return list(items)

    fetch.calls = calls  # type: ignore[attr-defined]
    return fetch


def _logged(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == name]


# -- precedence ----------------------------------------------------------------------


def test_precedence_table_then_static_then_default(store: Store) -> None:
    store.upsert_number(NumberRecord(number=N1, agent_id="agent_table", first_message="Hi"))
    # In the table without an agent: overrides kept, agent from the next source.
    store.upsert_number(NumberRecord(number=N2, language="de", fallback_number=N4))
    rt = RoutingTable(
        store,
        static_routes=[
            StaticRoute(number=N1, agent_id="agent_static1"),
            StaticRoute(number=N2, agent_id="agent_static2"),
        ],
        default_agent_id="agent_default",
    )
    r1 = rt.route(N1)
    assert r1 is not None and (r1.agent_id, r1.source, r1.first_message) == (
        "agent_table",
        "table",
        "Hi",
    )
    r2 = rt.route(N2)
    assert r2 is not None and (r2.agent_id, r2.source) == ("agent_static2", "static")
    assert (r2.language, r2.fallback_number) == ("de", N4)
    r3 = rt.route(N3)
    assert r3 is not None and (r3.agent_id, r3.source, r3.number) == (
        "agent_default",
        "default",
        None,
    )
    assert r3.dynamic_variables == {} and r3.first_message is None


def test_nothing_routes_without_default() -> None:
    rt = RoutingTable(None, static_routes=[StaticRoute(number=N1, agent_id="a")])
    assert rt.route(N2) is None
    assert rt.route(f" {N1} ") is not None  # stray whitespace from a form field


def test_from_config_uses_routes_and_default(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[[routes]]\nnumber = "{N1}"\nagent_id = "agent_cfg"\n')
    cfg = load_config(cfg_file, env={"BRIDGE_DEFAULT_AGENT_ID": "agent_env"})
    rt = RoutingTable.from_config(cfg, None)
    assert rt.route(N1).agent_id == "agent_cfg"  # type: ignore[union-attr]
    assert rt.route(N2).agent_id == "agent_env"  # type: ignore[union-attr]


# -- admin actions --------------------------------------------------------------------


def test_apply_and_remove_take_effect_and_persist(store: Store, db_path: str) -> None:
    rt = RoutingTable(store)
    rec = rt.apply(NumberRecord(number=N1, phone_number_id="pn_1", agent_id="agent_a"))
    assert rec.updated_at > 0
    assert rt.route(N1).agent_id == "agent_a"  # type: ignore[union-attr]
    assert rt.get("pn_1") == rec
    rt.apply(msgspec.structs.replace(rec, agent_id="agent_b"))
    assert rt.route(N1).agent_id == "agent_b"  # type: ignore[union-attr]
    rt.apply(NumberRecord(number=N2, agent_id="agent_c"))

    # A restart: a new table over a new store on the same file.
    with Store(db_path) as s2:
        rt2 = RoutingTable(s2)
        assert rt2.route(N1).agent_id == "agent_b"  # type: ignore[union-attr]
        assert [r.number for r in rt2.numbers()] == [N1, N2]

    assert rt.remove("pn_1") is True
    assert rt.route(N1) is None
    assert rt.remove(N1) is False
    assert store.get_number(N1) is None


def test_failed_apply_changes_nothing(store: Store, db_path: str) -> None:
    rt = RoutingTable(store)
    rt.apply(NumberRecord(number=N1, agent_id="agent_a"))
    with pytest.raises(InputError):
        rt.apply(NumberRecord(number="not-a-number", agent_id="x"))
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError):
            rt.apply(NumberRecord(number=N1, agent_id="agent_b"))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert rt.route(N1).agent_id == "agent_a"  # type: ignore[union-attr]
    assert [r.number for r in rt.numbers()] == [N1]


# -- sync -----------------------------------------------------------------------------


async def test_sync_adds_updates_removes_and_keeps_overrides(store: Store) -> None:
    rt = RoutingTable(store)
    rt.apply(NumberRecord(number=N1, phone_number_id="pn_1", agent_id="old", first_message="Hi"))
    rt.apply(NumberRecord(number=N3, phone_number_id="pn_3", agent_id="gone"))
    rt.apply(NumberRecord(number=N4, phone_number_id="pn_4", agent_id="same", label="L4"))
    fetch = _fetch_returning(
        [
            PlatformNumber(number=N1, phone_number_id="pn_1", agent_id="new", agent_name="New"),
            PlatformNumber(number=N2, phone_number_id="pn_2", provider="sip_trunk"),
            PlatformNumber(number=N4, phone_number_id="pn_4", agent_id="same", label="L4"),
        ]
    )
    result = await rt.sync(fetch)
    assert result.ok and result.persisted
    assert (result.added, result.updated, result.removed, result.unchanged) == (1, 1, 1, 1)
    r1 = rt.route(N1)
    assert r1 is not None and (r1.agent_id, r1.first_message) == ("new", "Hi")
    assert rt.get(N1).agent_name == "New"  # type: ignore[union-attr]
    assert rt.route(N2) is None  # on the platform, no agent assigned, no fallback
    assert rt.get(N2).provider == "sip_trunk"  # type: ignore[union-attr]
    assert rt.route(N3) is None
    assert rt.last_sync_at is not None and rt.last_sync_error is None
    # The store holds exactly the synced table.
    assert store.list_numbers() == rt.numbers()


async def test_fetch_failure_keeps_serving_the_last_table(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.routing")
    rt = RoutingTable(store)
    await rt.sync(_fetch_returning([PlatformNumber(number=N1, phone_number_id="p", agent_id="a")]))

    async def down() -> Sequence[PlatformNumber]:
        raise PlatformApiError("service unavailable", status=503)

    result = await rt.sync(down)
    assert not result.ok and "503" in (result.error or "")
    assert rt.route(N1).agent_id == "a"  # type: ignore[union-attr]
    assert rt.last_sync_error == result.error
    [rec] = _logged(caplog, "routing.sync_failed")
    assert rec.levelno == logging.ERROR and rec.bridge_fields["serving"] == 1  # type: ignore[attr-defined]

    async def refused() -> Sequence[PlatformNumber]:
        raise ConnectionRefusedError("connect failed")

    assert not (await rt.sync(refused)).ok
    assert [r.number for r in store.list_numbers()] == [N1]


async def test_platform_down_at_boot_routes_from_the_store(db_path: str) -> None:
    with Store(db_path) as s:
        await RoutingTable(s).sync(
            _fetch_returning([PlatformNumber(number=N1, phone_number_id="p", agent_id="a")])
        )

    async def down() -> Sequence[PlatformNumber]:
        raise TimeoutError

    with Store(db_path) as s:
        rt = RoutingTable(s)
        assert not (await rt.sync(down)).ok
        assert rt.route(N1).agent_id == "a"  # type: ignore[union-attr]


async def test_invalid_and_duplicate_items_are_skipped(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.routing")
    rt = RoutingTable(store)
    result = await rt.sync(
        _fetch_returning(
            [
                PlatformNumber(number="sip:alice@example.com", phone_number_id="p0"),
                PlatformNumber(number=N1, phone_number_id="p1", agent_id="a"),
                PlatformNumber(number=N1, phone_number_id="p1b", agent_id="b"),
                PlatformNumber(number=N2, phone_number_id="p2", agent_id="c"),
            ]
        )
    )
    assert result.ok and (result.added, result.skipped) == (2, 2)
    assert rt.route(N1).agent_id == "a"  # type: ignore[union-attr]
    assert len(_logged(caplog, "routing.sync_item_invalid")) == 1
    assert len(_logged(caplog, "routing.sync_duplicate")) == 1


async def test_admin_change_during_a_fetch_is_not_undone(store: Store) -> None:
    rt = RoutingTable(store)
    rt.apply(NumberRecord(number=N1, phone_number_id="p1", agent_id="before"))
    in_fetch, release = asyncio.Event(), asyncio.Event()

    async def slow_fetch() -> Sequence[PlatformNumber]:
        in_fetch.set()
        await release.wait()
        return [PlatformNumber(number=N1, phone_number_id="p1", agent_id="before")]

    task = asyncio.create_task(rt.sync(slow_fetch))
    await in_fetch.wait()
    # Admin reassigns N1 and adds N2 while the (now stale) list is in flight.
    rt.apply(NumberRecord(number=N1, phone_number_id="p1", agent_id="after"))
    rt.apply(NumberRecord(number=N2, phone_number_id="p2", agent_id="fresh"))
    release.set()
    result = await task
    assert result.ok and result.removed == 0
    assert rt.route(N1).agent_id == "after"  # type: ignore[union-attr]
    assert rt.route(N2).agent_id == "fresh"  # type: ignore[union-attr]
    assert store.get_number(N1).agent_id == "after"  # type: ignore[union-attr]


async def test_persist_failure_serves_from_memory_and_catches_up(
    store: Store, db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.routing")
    rt = RoutingTable(store)
    rt.apply(NumberRecord(number=N3, phone_number_id="p3", agent_id="x"))
    listing = [PlatformNumber(number=N1, phone_number_id="p1", agent_id="a")]
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        result = await rt.sync(_fetch_returning(listing))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert result.ok and not result.persisted
    assert rt.route(N1).agent_id == "a"  # type: ignore[union-attr]
    assert len(_logged(caplog, "routing.persist_failed")) == 1
    assert [r.number for r in store.list_numbers()] == [N3]  # the store missed it

    # Nothing changes on the platform, but the next sync writes the whole table.
    result = await rt.sync(_fetch_returning(listing))
    assert result.ok and result.persisted and result.unchanged == 1
    assert store.list_numbers() == rt.numbers()


async def test_periodic_sync_runs_until_stopped() -> None:
    rt = RoutingTable(None)
    stop = asyncio.Event()
    seen: list[int] = []

    async def fetch() -> Sequence[PlatformNumber]:
        seen.append(len(seen))
        if len(seen) == 3:
            stop.set()
        return [PlatformNumber(number=N1, phone_number_id="p", agent_id=f"a{len(seen)}")]

    await asyncio.wait_for(rt.run_periodic_sync(fetch, 0.001, stop), timeout=10)
    assert len(seen) == 3
    assert rt.route(N1).agent_id == "a3"  # type: ignore[union-attr]


async def test_periodic_sync_with_zero_interval_syncs_once() -> None:
    rt = RoutingTable(None)
    fetch = _fetch_returning([PlatformNumber(number=N1, phone_number_id="p", agent_id="a")])
    await asyncio.wait_for(rt.run_periodic_sync(fetch, 0, asyncio.Event()), timeout=10)
    assert len(fetch.calls) == 1  # type: ignore[attr-defined]
    assert rt.route(N1) is not None


async def test_periodic_sync_survives_failures() -> None:
    rt = RoutingTable(None, default_agent_id="dflt")
    stop = asyncio.Event()
    attempts: list[int] = []

    async def flaky() -> Sequence[PlatformNumber]:
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("network unreachable")
        stop.set()
        return [PlatformNumber(number=N1, phone_number_id="p", agent_id="a")]

    await asyncio.wait_for(rt.run_periodic_sync(flaky, 0.001, stop), timeout=10)
    assert len(attempts) == 3
    assert rt.route(N1).agent_id == "a"  # type: ignore[union-attr]
    assert rt.route(N2).agent_id == "dflt"  # type: ignore[union-attr]
