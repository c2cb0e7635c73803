"""Live rows from the live calls and their records; the SSE feed (no server needed)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from bridge.call.actions import HANGUP, Disposition, EndReason
from bridge.console.live import LiveFeed, LiveSnapshot, live_rows
from bridge.store import CallRecord


class FakeCall:
    """A live call as the registry holds it (the CallControl protocol)."""

    def __init__(self, sid: str, agent: str, params: Mapping[str, str]) -> None:
        self.call_sid = sid
        self.stream_sid = f"MZ{sid}"
        self.agent_id = agent
        self.parameters = params

    def end_call(
        self,
        reason: EndReason = EndReason.AGENT_END_CALL,
        disposition: Disposition = HANGUP,
        *,
        wait_for_playout: bool = True,
    ) -> None:
        pass

    def send_to_agent(self, message: msgspec.Struct) -> None:
        pass

    def play_to_caller(self, ulaw: bytes, label: str) -> None:
        pass


A = FakeCall("CA1", "agent_a", {"caller_id": "+14155550123", "called_number": "+15550001111"})
B = FakeCall("CA2", "agent_b", {"caller_id": "+14155550999", "called_number": "+15550002222"})


def test_rows_mask_the_caller_unless_revealed_and_sort_by_start() -> None:
    records = {
        "CA1": CallRecord(call_sid="CA1", started_at=10.0, answered_at=12.0),
        "CA2": CallRecord(call_sid="CA2", started_at=5.0),
    }
    rows = live_rows([A, B], records, {}, agent_names={"agent_a": "Reception"})
    assert [r.call_sid for r in rows] == ["CA2", "CA1"]
    a = rows[1]
    assert (a.number, a.caller, a.agent_name, a.started_at) == (
        "+15550001111",
        "+1 ••• ••• 0123",
        "Reception",
        12.0,
    )
    assert rows[0].agent_name == "agent_b"  # no name known: the id
    assert rows[0].audio_format == "—"  # not a relayed stream: no formats to show
    revealed = live_rows([A], records, {}, reveal=True)
    assert revealed[0].caller == "+14155550123"


def test_a_call_without_a_record_yet_counts_from_when_it_was_first_seen() -> None:
    (row,) = live_rows([A], {}, {"CA1": 42.0})
    assert row.started_at == 42.0 and row.state == "in-progress"


async def test_feed_sends_a_snapshot_on_change_and_stops_when_draining() -> None:
    calls: list[FakeCall] = [A]
    lookups: list[str] = []
    stopping = False

    async def record(sid: str) -> CallRecord | None:
        lookups.append(sid)
        return CallRecord(call_sid=sid, started_at=1.0, answered_at=2.0)

    feed = LiveFeed(calls, record, lambda: stopping, tick_s=0.001)
    events = feed.events()
    assert await anext(events) == b"retry: 1000\n\n"
    first = await anext(events)
    assert first.startswith(b"event: calls\ndata: ") and first.endswith(b"\n\n")
    snap = msgspec.json.decode(first.split(b"data: ", 1)[1], type=LiveSnapshot)
    assert [r.call_sid for r in snap.calls] == ["CA1"] and snap.calls[0].started_at == 2.0
    calls.append(B)
    second = msgspec.json.decode((await anext(events)).split(b"data: ", 1)[1], type=LiveSnapshot)
    assert [r.call_sid for r in second.calls] == ["CA1", "CA2"]
    assert lookups == ["CA1", "CA2"]  # a record is read once it has its answer time
    calls.clear()
    third = msgspec.json.decode((await anext(events)).split(b"data: ", 1)[1], type=LiveSnapshot)
    assert third.calls == []
    stopping = True
    assert [e async for e in events] == []  # the stream ends: shutdown never waits on it


async def test_feed_stops_when_the_page_is_gone() -> None:
    async def record(sid: str) -> CallRecord | None:
        return None

    async def gone() -> bool:
        return True

    feed = LiveFeed([A], record, lambda: False, gone=gone, tick_s=0.001)
    chunks = [c async for c in feed.events()]
    assert chunks[0] == b"retry: 1000\n\n" and len(chunks) == 2  # one snapshot, then done
