"""The number's ``record`` flag: stored by both backends, carried to the call plan."""

from __future__ import annotations

from bridge.call.plan import plan_for_stream
from bridge.routing import RoutingTable
from bridge.store import NumberRecord, Store

# The per-backend store fixtures (SQLite file, PostgreSQL schema) of tests/store.
from tests.store.conftest import db, store

__all__ = ["db", "store"]


def test_the_flag_survives_the_store_and_reaches_the_plan(store: Store) -> None:
    store.upsert_number(NumberRecord(number="+14155550123", agent_id="agent_a", record=True))
    store.upsert_number(NumberRecord(number="+14155550124", agent_id="agent_a"))
    flags = {n.number: n.record for n in store.list_numbers()}
    assert flags == {"+14155550123": True, "+14155550124": False}
    assert all(type(n.record) is bool for n in store.list_numbers())
    routing = RoutingTable(store)  # loaded from the store, as at start
    on = plan_for_stream({"called_number": "+14155550123"}, routing)
    off = plan_for_stream({"called_number": "+14155550124"}, routing)
    assert on is not None and on.record
    assert off is not None and not off.record
