from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator

import msgspec
import pytest

from bridge.config import StoreConfig
from bridge.errors import InputError, StoreError
from bridge.store import CallRecord, NumberRecord, Store

from .conftest import Locker, events

N1, N2, N3 = "+14155550100", "+14155550101", "+14155550102"


@pytest.fixture(params=["file", "memory", "postgres"])
def any_store(request: pytest.FixtureRequest, db_path: str) -> Iterator[Store]:
    """The same contract on every backend: SQLite file, SQLite in memory, PostgreSQL."""
    if request.param == "postgres":
        db = request.getfixturevalue("postgres_dsn")
    else:
        db = db_path if request.param == "file" else ":memory:"
    s = Store(db, linger_s=0)
    yield s
    s.close()


# -- numbers ---------------------------------------------------------------------------


def test_number_crud(any_store: Store) -> None:
    s = any_store
    assert s.list_numbers() == []
    a = s.upsert_number(
        NumberRecord(
            number=N2,
            phone_number_id="pn_2",
            label="sales",
            agent_id="agent_s",
            dynamic_variables={"team": "sales"},
            first_message="Hi from sales",
        )
    )
    assert a.updated_at > 0
    s.upsert_number(NumberRecord(number=N1, provider="sip_trunk"))
    assert [r.number for r in s.list_numbers()] == [N1, N2]
    assert s.get_number(N2) == a
    assert s.get_number("pn_2") == a
    assert s.get_number("pn_404") is None

    b = s.upsert_number(msgspec.structs.replace(a, agent_id="agent_t", language="de"))
    got = s.get_number("pn_2")
    assert got == b and got.agent_id == "agent_t" and got.dynamic_variables == {"team": "sales"}
    assert len(s.list_numbers()) == 2

    assert s.delete_number("pn_2") is True
    assert s.delete_number(N2) is False
    assert [r.number for r in s.list_numbers()] == [N1]


def test_phone_number_id_clash_is_a_409_and_changes_nothing(any_store: Store) -> None:
    any_store.upsert_number(NumberRecord(number=N1, phone_number_id="pn_1"))
    with pytest.raises(InputError) as e:
        any_store.upsert_number(NumberRecord(number=N2, phone_number_id="pn_1"))
    assert e.value.field == "phone_number_id" and e.value.status == 409
    assert [r.number for r in any_store.list_numbers()] == [N1]


def test_invalid_number_is_rejected_before_sqlite(any_store: Store) -> None:
    with pytest.raises(InputError) as e:
        any_store.upsert_number(NumberRecord(number="0800 FLOWERS"))
    assert e.value.field == "number"
    assert any_store.list_numbers() == []


def test_sync_numbers_is_all_or_nothing(any_store: Store) -> None:
    s = any_store
    s.upsert_number(NumberRecord(number=N1, phone_number_id="pn_1"))
    s.sync_numbers([NumberRecord(number=N2, updated_at=7.0)], deletes=[N1])
    assert [(r.number, r.updated_at) for r in s.list_numbers()] == [(N2, 7.0)]
    # The clash on the second upsert rolls back the first and the delete.
    with pytest.raises(InputError):
        s.sync_numbers(
            [
                NumberRecord(number=N1, phone_number_id="pn_x"),
                NumberRecord(number=N3, phone_number_id="pn_x"),
            ],
            deletes=[N2],
        )
    assert [r.number for r in s.list_numbers()] == [N2]


def test_number_write_while_locked_is_a_store_error(db: str, locker: Locker) -> None:
    s = Store(db, busy_timeout_s=0.05)
    locker.hold()
    with pytest.raises(StoreError, match="database is locked"):
        s.upsert_number(NumberRecord(number=N1))
    assert s.list_numbers() == []  # reads still work (WAL; plain reads in PostgreSQL)
    locker.release()
    s.upsert_number(NumberRecord(number=N1))
    assert len(s.list_numbers()) == 1
    s.close()


# -- call records ----------------------------------------------------------------------


def _call(i: int, **kw: object) -> CallRecord:
    base: dict[str, object] = {
        "call_sid": f"CA{i:04d}",
        "stream_sid": f"MZ{i:04d}",
        "from_number": "+15005550006",
        "to_number": N1 if i % 2 else N2,
        "agent_id": "agent_a" if i % 3 else "agent_b",
        "status": "in-progress" if i % 4 == 0 else "completed",
        "started_at": 1000.0 + i,
        "instance": "bridge-a",  # (named: the store stamps only records that name none)
    }
    base.update(kw)
    return CallRecord(**base)  # type: ignore[arg-type]


def test_record_update_get(any_store: Store) -> None:
    s = any_store
    rec = _call(1, status="ringing")
    assert s.record_call(rec) is True
    assert s.update_call(
        rec.call_sid,
        status="in-progress",
        conversation_id="conv_1",
        answered_at=1001.5,
        events=[{"at": 1001.5, "event": "answered"}],
    )
    assert s.update_call(rec.call_sid, bytes_in=16000, bytes_out=8000, interruptions=2)
    expected = msgspec.structs.replace(
        rec,
        status="in-progress",
        conversation_id="conv_1",
        answered_at=1001.5,
        events=({"at": 1001.5, "event": "answered"},),
        bytes_in=16000,
        bytes_out=8000,
        interruptions=2,
    )
    assert s.get_call(rec.call_sid) == expected  # before or after the write: same answer
    assert s.flush()
    assert s.pending_writes == 0
    assert s.get_call(rec.call_sid) == expected
    # Updates to an already written row.
    s.update_call(rec.call_sid, status="completed", ended_at=1060.0, duration_s=59.0)
    assert s.flush()
    got = s.get_call(rec.call_sid)
    assert got is not None and got.status == "completed" and got.duration_s == 59.0
    assert got.bytes_in == 16000
    assert s.get_call("CA_nope") is None


def test_bad_update_raises_at_the_caller(any_store: Store) -> None:
    with pytest.raises(InputError) as e:
        any_store.update_call("CA1", bytes_in=-5)
    assert e.value.field == "bytes_in"
    with pytest.raises(InputError):
        any_store.update_call("", status="completed")
    assert any_store.pending_writes == 0


def test_update_of_unknown_call_is_logged_and_dropped(
    any_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.store")
    any_store.update_call("CA_ghost", status="completed")
    assert any_store.flush()
    assert any_store.get_call("CA_ghost") is None
    [rec] = events(caplog, "store.update_unknown_call", logging.WARNING)
    assert rec.bridge_fields["call_sid"] == "CA_ghost"  # type: ignore[attr-defined]


def test_record_call_replaces_a_previous_record(any_store: Store) -> None:
    any_store.record_call(_call(1, bytes_in=5))
    assert any_store.flush()
    any_store.record_call(_call(1, bytes_in=7, status="failed"))
    assert any_store.flush()
    got = any_store.get_call("CA0001")
    assert got is not None and (got.bytes_in, got.status) == (7, "failed")


def _brute(
    recs: list[CallRecord], live: bool | None, number: str | None, agent: str | None
) -> list[str]:
    out = [
        r
        for r in recs
        if (live is None or r.live == live)
        and (number is None or number in (r.to_number, r.from_number))
        and (agent is None or r.agent_id == agent)
    ]
    out.sort(key=lambda r: (r.started_at, r.call_sid), reverse=True)
    return [r.call_sid for r in out]


def _all_pages(s: Store, limit: int, **filters: object) -> list[str]:
    sids: list[str] = []
    cursor = None
    for _ in range(1000):
        page = s.list_calls(limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        assert len(page.items) <= limit
        sids += [r.call_sid for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return sids
        assert len(page.items) == limit  # a page before the last is full
    raise AssertionError("pagination did not end")


FILTERS: list[dict[str, object]] = [
    {},
    {"live": True},
    {"live": False},
    {"number": N1},
    {"number": "+15005550006"},
    {"agent_id": "agent_b"},
    {"live": False, "number": N2, "agent_id": "agent_a"},
]


@pytest.mark.parametrize("filters", FILTERS)
def test_list_calls_pages_match_a_brute_force_filter(
    any_store: Store, filters: dict[str, object]
) -> None:
    recs = [_call(i) for i in range(37)]
    # Ties on started_at are ordered by call_sid.
    recs += [_call(i, started_at=1010.0) for i in range(100, 104)]
    for r in recs:
        any_store.record_call(r)
    assert any_store.flush()
    expected = _brute(recs, filters.get("live"), filters.get("number"), filters.get("agent_id"))  # type: ignore[arg-type]
    assert expected, "the filter should match something"
    for limit in (1, 5, 50):
        assert _all_pages(any_store, limit, **filters) == expected


def test_list_calls_overlays_pending_changes(store: Store, locker: Locker) -> None:
    """With writes stuck behind a lock, listings still reflect every queued change."""
    rng = random.Random(7)
    written = [_call(i) for i in range(30)]
    for r in written:
        store.record_call(r)
    assert store.flush()
    locker.hold()
    truth = {r.call_sid: r for r in written}
    # New calls, and updates that move written calls in and out of every filter.
    for i in range(30, 45):
        truth[f"CA{i:04d}"] = _call(i)
        store.record_call(truth[f"CA{i:04d}"])
    for sid in rng.sample(sorted(truth), 20):
        changes = {
            "status": rng.choice(["in-progress", "completed", "failed"]),
            "agent_id": rng.choice(["agent_a", "agent_b"]),
            "to_number": rng.choice([N1, N2, N3]),
        }
        store.update_call(sid, **changes)
        truth[sid] = msgspec.structs.replace(truth[sid], **changes)
    assert store.pending_writes > 0
    assert locker.held  # nothing could have been written meanwhile
    recs = list(truth.values())
    for filters in [*FILTERS, {"number": N3}]:
        expected = _brute(recs, filters.get("live"), filters.get("number"), filters.get("agent_id"))  # type: ignore[arg-type]
        for limit in (3, 100):
            assert _all_pages(store, limit, **filters) == expected, filters
    for sid, rec in truth.items():
        assert store.get_call(sid) == rec
    locker.release()
    assert store.flush()
    assert _all_pages(store, 7) == _brute(recs, None, None, None)


def test_list_calls_rejects_bad_arguments(any_store: Store) -> None:
    with pytest.raises(InputError) as e:
        any_store.list_calls(limit=0)
    assert e.value.field == "limit"
    with pytest.raises(InputError):
        any_store.list_calls(limit=1001)
    for bad in ["%%%", "bm90IGpzb24", "WzEsMiwzXQ"]:  # not base64; not JSON; wrong shape
        with pytest.raises(InputError) as e:
            any_store.list_calls(cursor=bad)
        assert e.value.field == "cursor" and e.value.status == 400


def test_calls_survive_a_restart(db: str) -> None:
    recs = [_call(i, events=({"at": float(i), "event": "x"},)) for i in range(20)]
    s = Store(db)
    for r in recs:
        s.record_call(r)
    s.update_call("CA0003", end_reason="caller_hangup")
    assert s.close() == 0  # close() flushes
    s = Store(db)
    try:
        assert s.get_call("CA0003") == msgspec.structs.replace(recs[3], end_reason="caller_hangup")
        assert len(s.list_calls(limit=100).items) == 20
        assert s.get_call("CA0007") == recs[7]
    finally:
        s.close()


def test_prune_removes_only_ended_calls_before_the_cutoff(any_store: Store) -> None:
    s = any_store
    s.record_call(_call(1, ended_at=100.0, status="completed"))
    s.record_call(_call(2, ended_at=200.0, status="completed"))
    s.record_call(_call(3, status="in-progress"))
    assert s.flush()
    assert s.prune_calls(ended_before=150.0) == 1
    assert [r.call_sid for r in s.list_calls().items] == ["CA0003", "CA0002"]


def test_closed_store_refuses_use(db: str) -> None:
    s = Store(db)
    s.close()
    assert s.close() == 0  # idempotent
    with pytest.raises(StoreError):
        s.record_call(_call(1))
    with pytest.raises(StoreError, match="closed"):
        s.list_numbers()
    with pytest.raises(StoreError, match="closed"):
        s.upsert_number(NumberRecord(number=N1))


def test_concurrent_producers_all_land(any_store: Store) -> None:
    def produce(k: int) -> None:
        for i in range(50):
            sid = f"CA{k}_{i}"
            any_store.record_call(CallRecord(call_sid=sid, started_at=float(i)))
            any_store.update_call(sid, bytes_in=i, status="completed")

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any_store.flush()
    page = any_store.list_calls(limit=1000)
    assert len(page.items) == 200
    assert all(r.status == "completed" and r.bytes_in == r.started_at for r in page.items)


def test_from_config(db: str, locker: Locker) -> None:
    s = Store.from_config(StoreConfig(db=db, max_pending_writes=3, max_db_mb=1))
    try:
        locker.hold()
        assert [s.record_call(_call(i)) for i in range(4)] == [True, True, True, False]
        locker.release()
        assert s.flush()
        assert len(s.list_calls().items) == 3
    finally:
        s.close()


# -- instances -------------------------------------------------------------------------


def test_the_instance_is_stamped_when_the_stream_starts(any_store: Store) -> None:
    s = any_store
    assert s.instance  # the host name by default
    s.record_call(CallRecord(call_sid="CA1", status="ringing"))  # the webhook: no stream yet
    s.record_call(CallRecord(call_sid="CA2", stream_sid="MZ2"))  # a stream nobody announced
    s.record_call(CallRecord(call_sid="CA3", stream_sid="MZ3", instance="bridge-b"))
    assert s.flush()
    got = s.get_call("CA1")
    assert got is not None and got.instance is None
    s.update_call("CA1", stream_sid="MZ1", status="in-progress")  # the stream starts here
    s.update_call("CA3", bytes_in=5)
    assert s.flush()
    assert {r.call_sid: r.instance for r in s.list_calls().items} == {
        "CA1": s.instance,
        "CA2": s.instance,
        "CA3": "bridge-b",
    }


def test_the_instance_can_be_named(db: str) -> None:
    with Store(db, instance="pod-7") as s:
        s.record_call(CallRecord(call_sid="CA1"))
        s.update_call("CA1", stream_sid="MZ1")
        assert s.flush()
        got = s.get_call("CA1")
        assert got is not None and got.instance == "pod-7"
