"""Live rows from the live calls and their records; the SSE feed (no server needed)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from bridge.call.actions import HANGUP, Disposition, EndReason
from bridge.console.live import LiveFeed, LiveSnapshot, live_rows
from bridge.errors import StoreError
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
    records = [
        CallRecord(call_sid="CA1", started_at=10.0, answered_at=12.0, status="in-progress"),
        CallRecord(call_sid="CA2", started_at=5.0, status="in-progress"),
    ]
    rows = live_rows([A, B], records, {}, here="pod-a", agent_names={"agent_a": "Reception"})
    assert [r.call_sid for r in rows] == ["CA2", "CA1"]
    a = rows[1]
    assert (a.number, a.caller, a.agent_name, a.started_at, a.instance) == (
        "+15550001111",
        "+1 ••• ••• 0123",
        "Reception",
        12.0,
        "pod-a",
    )
    assert rows[0].agent_name == "agent_b"  # no name known: the id
    assert rows[0].audio_format == "—"  # not a relayed stream: no formats to show
    assert (rows[0].relay_p99_ms, rows[0].turns) == (None, None)  # nor relay figures
    revealed = live_rows([A], records[:1], {}, reveal=True)
    assert revealed[0].caller == "+14155550123"


def test_a_call_without_a_record_yet_counts_from_when_it_was_first_seen() -> None:
    (row,) = live_rows([A], [], {"CA1": 42.0})
    assert row.started_at == 42.0 and row.state == "in-progress"


def test_calls_of_other_instances_come_from_their_records() -> None:
    remote = CallRecord(
        call_sid="CA9",
        from_number="+14155550777",
        to_number="+15550003333",
        agent_id="agent_b",
        status="in-progress",
        started_at=3.0,
        answered_at=4.0,
        instance="pod-b",
    )
    outbound = CallRecord(
        call_sid="CA8",
        direction="outbound-api",
        from_number="+15550004444",
        to_number="+14155550888",
        status="ringing",
        started_at=6.0,
    )
    ended_here = CallRecord(call_sid="CA7", status="in-progress", instance="pod-a")
    finished = CallRecord(call_sid="CA6", status="completed", instance="pod-b")
    rows = live_rows(
        [A],
        [remote, outbound, ended_here, finished],
        {"CA1": 20.0},
        here="pod-a",
        agent_names={"agent_b": "Billing"},
    )
    assert [(r.call_sid, r.instance) for r in rows] == [
        ("CA9", "pod-b"),
        ("CA8", "—"),  # its stream has not started: no instance relays it yet
        ("CA1", "pod-a"),
    ]
    r9, r8, _ = rows
    assert (r9.number, r9.caller, r9.agent_name, r9.started_at, r9.state) == (
        "+15550003333",
        "+1 ••• ••• 0777",
        "Billing",
        4.0,
        "in-progress",
    )
    assert r9.audio_format == "—"
    # Outbound: our number is the caller id, the other party the one called.
    assert (r8.number, r8.caller, r8.state) == ("+15550004444", "+1 ••• ••• 0888", "ringing")


async def test_feed_sends_a_snapshot_on_change_and_stops_when_draining() -> None:
    calls: list[FakeCall] = [A]
    asked = 0
    stopping = False
    remote: list[CallRecord] = []

    async def list_live() -> list[CallRecord]:
        nonlocal asked
        asked += 1
        local = [
            CallRecord(call_sid=c.call_sid, started_at=1.0, answered_at=2.0, instance="me")
            for c in calls
        ]
        return local + remote

    feed = LiveFeed(calls, list_live, lambda: stopping, here="me", tick_s=0.001)
    events = feed.events()
    assert await anext(events) == b"retry: 1000\n\n"
    first = await anext(events)
    assert first.startswith(b"event: calls\ndata: ") and first.endswith(b"\n\n")
    snap = msgspec.json.decode(first.split(b"data: ", 1)[1], type=LiveSnapshot)
    assert [r.call_sid for r in snap.calls] == ["CA1"] and snap.calls[0].started_at == 2.0
    assert snap.complete
    calls.append(B)
    second = msgspec.json.decode((await anext(events)).split(b"data: ", 1)[1], type=LiveSnapshot)
    assert [r.call_sid for r in second.calls] == ["CA1", "CA2"]
    assert asked == 2  # asked again at once: the calls here changed
    # Another instance's call shows up on the next question to the service.
    remote.append(CallRecord(call_sid="CA5", started_at=3.0, status="in-progress", instance="b"))
    third = msgspec.json.decode((await anext(events)).split(b"data: ", 1)[1], type=LiveSnapshot)
    assert [(r.call_sid, r.instance) for r in third.calls] == [
        ("CA1", "me"),
        ("CA2", "me"),
        ("CA5", "b"),
    ]
    calls.clear()
    remote.clear()
    fourth = msgspec.json.decode((await anext(events)).split(b"data: ", 1)[1], type=LiveSnapshot)
    assert fourth.calls == []
    stopping = True
    assert [e async for e in events] == []  # the stream ends: shutdown never waits on it


async def test_feed_shows_this_instance_alone_while_the_store_fails() -> None:
    async def list_live() -> list[CallRecord]:
        raise StoreError("database is locked")

    feed = LiveFeed([A], list_live, lambda: False, here="me")
    snap = await feed.snapshot()
    assert [r.call_sid for r in snap.calls] == ["CA1"] and not snap.complete


async def test_feed_stops_when_the_page_is_gone() -> None:
    async def list_live() -> list[CallRecord]:
        return []

    async def gone() -> bool:
        return True

    feed = LiveFeed([A], list_live, lambda: False, gone=gone, tick_s=0.001)
    chunks = [c async for c in feed.events()]
    assert chunks[0] == b"retry: 1000\n\n" and len(chunks) == 2  # one snapshot, then done
