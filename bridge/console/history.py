"""Call history: the filter from a query string, and one page with totals over a scan.

The store filters by number and agent itself (``Provisioning.list_calls``); the status
/ end-reason and time-range filters, the totals and the page numbers are computed here
over the records it returns, newest first, scanning at most ``SCAN_LIMIT`` of them (the
page then says the totals are over the newest ``SCAN_LIMIT``).  Pure: records in, a
page out.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from bridge.admin.models import AGENT_ID_PATTERN, E164_PATTERN
from bridge.call.actions import EndReason
from bridge.errors import InputError
from bridge.store import CallRecord
from bridge.store.records import LIVE_STATUSES

PAGE_SIZE: Final = 25
SCAN_LIMIT: Final = 5000
STATUSES: Final = (
    "queued",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "no-answer",
    "failed",
    "canceled",
)
REASONS: Final = tuple(r.value for r in EndReason)
_LOCAL_TIME: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?$")


@dataclass(frozen=True)
class HistoryQuery:
    number: str | None = None
    agent_id: str | None = None
    outcome: str | None = None  # "live", a status or an end reason
    since: float | None = None
    until: float | None = None
    page: int = 1

    def form_values(self) -> dict[str, str]:
        """The query as the filter form shows it (times as ``YYYY-MM-DDTHH:MM``, UTC)."""
        return {
            "number": self.number or "",
            "agent_id": self.agent_id or "",
            "outcome": self.outcome or "",
            "since": _form_time(self.since),
            "until": _form_time(self.until),
        }


def parse_query(params: Mapping[str, str]) -> HistoryQuery:
    """The filter from query parameters; InputError naming the field when one is wrong."""

    def text(name: str) -> str | None:
        raw = params.get(name, "").strip()
        return raw or None

    number, agent_id, outcome = text("number"), text("agent_id"), text("outcome")
    if number is not None and not re.fullmatch(E164_PATTERN, number):
        raise InputError("number", "must be an E.164 number such as +14155550100", 400)
    if agent_id is not None and not re.fullmatch(AGENT_ID_PATTERN, agent_id):
        raise InputError("agent_id", "must be an agent id (letters, digits, _ and -)", 400)
    if outcome is not None and outcome != "live" and outcome not in STATUSES + REASONS:
        raise InputError("outcome", f"is not a status or end reason: {outcome!r}", 400)
    since, until = _time(text("since"), "since"), _time(text("until"), "until")
    if since is not None and until is not None and until <= since:
        raise InputError("until", "must be later than the start of the range", 400)
    raw_page = params.get("page", "1").strip() or "1"
    if not re.fullmatch(r"[0-9]{1,5}", raw_page) or int(raw_page) < 1:
        raise InputError("page", f"must be a page number, got {raw_page!r}", 400)
    return HistoryQuery(number, agent_id, outcome, since, until, int(raw_page))


def _time(raw: str | None, name: str) -> float | None:
    if raw is None:
        return None
    if not _LOCAL_TIME.match(raw):
        raise InputError(name, "must be a date and time such as 2026-01-31T14:30 (UTC)", 400)
    try:
        return dt.datetime.fromisoformat(raw).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise InputError(name, f"is not a real date and time: {raw!r}", 400) from None


def _form_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M")


def matches(q: HistoryQuery, rec: CallRecord) -> bool:
    if q.since is not None and rec.started_at < q.since:
        return False
    if q.until is not None and rec.started_at >= q.until:
        return False
    if q.outcome is None:
        return True
    if q.outcome == "live":
        return rec.status in LIVE_STATUSES
    if q.outcome in STATUSES:
        return rec.status == q.outcome
    return rec.end_reason == q.outcome


@dataclass
class Totals:
    calls: int = 0
    live: int = 0
    minutes: float = 0.0
    by_reason: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class HistoryPage:
    items: list[CallRecord]
    totals: Totals
    page: int
    pages: int
    scanned: int
    truncated: bool  # the scan stopped at SCAN_LIMIT: totals cover the newest records only


def history_page(
    records: Iterable[CallRecord],
    q: HistoryQuery,
    *,
    page_size: int = PAGE_SIZE,
    scan_limit: int = SCAN_LIMIT,
) -> HistoryPage:
    """Page ``q.page`` of the records matching ``q`` (``records`` newest first)."""
    totals = Totals()
    items: list[CallRecord] = []
    first = (q.page - 1) * page_size
    scanned = 0
    truncated = False
    for rec in records:
        if scanned >= scan_limit:
            truncated = True
            break
        scanned += 1
        if q.since is not None and rec.started_at < q.since:
            break  # newest first: everything after is older still
        if not matches(q, rec):
            continue
        if first <= totals.calls < first + page_size:
            items.append(rec)
        totals.calls += 1
        totals.live += rec.status in LIVE_STATUSES
        totals.minutes += (rec.duration_s or 0.0) / 60
        totals.by_reason[rec.end_reason or ("live" if rec.live else rec.status)] += 1
    pages = max(1, -(-totals.calls // page_size))
    return HistoryPage(items, totals, min(q.page, pages), pages, scanned, truncated)
