"""The history filter and its page with totals (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from bridge.console.history import HistoryQuery, history_page, matches, parse_query
from bridge.errors import InputError
from bridge.store import CallRecord

T0 = dt.datetime(2026, 1, 31, 14, 30, tzinfo=dt.UTC).timestamp()


def rec(i: int, **fields: object) -> CallRecord:
    base: dict[str, object] = {
        "call_sid": f"CA{i:04d}",
        "started_at": T0 - i * 60,  # newest first as i grows
        "status": "completed",
        "end_reason": "caller_hangup",
        "duration_s": 30.0,
    }
    base.update(fields)
    return CallRecord(**base)  # type: ignore[arg-type]


def test_parse_query_reads_every_filter() -> None:
    q = parse_query(
        {
            "number": "+14155550100",
            "agent_id": "agent_1",
            "outcome": "admin_hangup",
            "since": "2026-01-31T14:00",
            "until": "2026-01-31T15:00:30",
            "page": "3",
        }
    )
    assert q == HistoryQuery("+14155550100", "agent_1", "admin_hangup", T0 - 1800, T0 + 1830, 3)
    assert q.form_values()["since"] == "2026-01-31T14:00"
    assert parse_query({}) == HistoryQuery()
    assert parse_query({"number": " ", "page": ""}) == HistoryQuery()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"number": "4155550100"}, "number"),
        ({"number": "+1415555\n0100"}, "number"),
        ({"agent_id": "a b"}, "agent_id"),
        ({"outcome": "exploded"}, "outcome"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-02-30T10:00"}, "since"),
        ({"until": "2026-01-31 10:00"}, "until"),
        ({"since": "2026-01-31T10:00", "until": "2026-01-31T09:00"}, "until"),
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "x"}, "page"),
    ],
)
def test_parse_query_names_the_bad_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(InputError) as e:
        parse_query(params)
    assert e.value.field == field and e.value.status == 400


def test_matches_status_reason_live_and_range() -> None:
    live = rec(1, status="in-progress", end_reason=None)
    done = rec(2)
    assert matches(HistoryQuery(outcome="live"), live) and not matches(
        HistoryQuery(outcome="live"), done
    )
    assert matches(HistoryQuery(outcome="completed"), done)
    assert matches(HistoryQuery(outcome="caller_hangup"), done)
    assert not matches(HistoryQuery(outcome="transfer"), done)
    assert matches(HistoryQuery(since=done.started_at), done)
    assert not matches(HistoryQuery(since=done.started_at + 1), done)
    assert not matches(HistoryQuery(until=done.started_at), done)


def test_pages_and_totals() -> None:
    records = [rec(i, end_reason="transfer" if i % 3 == 0 else "caller_hangup") for i in range(60)]
    first = history_page(records, HistoryQuery(), page_size=25)
    assert [r.call_sid for r in first.items] == [f"CA{i:04d}" for i in range(25)]
    assert (first.page, first.pages, first.totals.calls) == (1, 3, 60)
    assert first.totals.minutes == pytest.approx(30.0)
    assert first.totals.by_reason == {"transfer": 20, "caller_hangup": 40}
    last = history_page(records, HistoryQuery(page=3), page_size=25)
    assert [r.call_sid for r in last.items] == [f"CA{i:04d}" for i in range(50, 60)]
    beyond = history_page(records, HistoryQuery(page=9), page_size=25)
    assert beyond.items == [] and beyond.page == 3
    transfers = history_page(records, HistoryQuery(outcome="transfer"), page_size=25)
    assert transfers.totals.calls == 20 and transfers.pages == 1


def test_scan_stops_at_the_range_start_and_at_the_limit() -> None:
    records = [rec(i) for i in range(100)]
    q = HistoryQuery(since=records[9].started_at)
    page = history_page(records, q)
    assert page.totals.calls == 10 and page.scanned == 11 and not page.truncated
    capped = history_page(records, HistoryQuery(), scan_limit=40)
    assert capped.truncated and capped.totals.calls == 40
