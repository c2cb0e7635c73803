"""`bridge calls …` against a live bridge."""

from __future__ import annotations

import json

from bridge.store import CallRecord
from bridge.store.transcripts import (
    AgentSaid,
    AgentTurn,
    Ended,
    Keypad,
    LatencySummary,
    StageStats,
    UserSaid,
)
from tests.admin.stack import CALLER, NUMBER, BridgeUnderTest
from tests.commands.conftest import Cli


def _record(bridge: BridgeUnderTest, sid: str, status: str, started: float) -> None:
    bridge.app.state.store.record_call(
        CallRecord(
            call_sid=sid,
            to_number=NUMBER,
            from_number=CALLER,
            agent_id="agent_x",
            status=status,  # type: ignore[arg-type]
            started_at=started,
            duration_s=12.0 if status == "completed" else None,
            end_reason="caller_hangup" if status == "completed" else None,
        )
    )


async def test_list_show_and_pages(cli: Cli, bridge: BridgeUnderTest) -> None:
    _record(bridge, "CA" + "1" * 32, "completed", 1700000000.0)
    _record(bridge, "CA" + "2" * 32, "in-progress", 1700000100.0)

    rc, out, err = await cli("calls", "list")
    assert (rc, err) == (0, "")
    assert "CA" + "1" * 32 in out and "caller_hangup" in out and "2023-11-14" in out

    rc, out, _ = await cli("calls", "list", "--live", "--json")
    assert [c["call_sid"] for c in json.loads(out)["items"]] == ["CA" + "2" * 32]
    rc, out, _ = await cli("calls", "list", "--ended", "--json")
    assert [c["call_sid"] for c in json.loads(out)["items"]] == ["CA" + "1" * 32]

    rc, out, _ = await cli("calls", "list", "--limit", "1", "--json")
    page = json.loads(out)
    assert len(page["items"]) == 1 and page["next_cursor"]
    rc, out, _ = await cli("calls", "list", "--limit", "1")
    assert f"--cursor {page['next_cursor']}" in out
    rc, out, _ = await cli(
        "calls", "list", "--limit", "1", "--cursor", page["next_cursor"], "--json"
    )
    assert [c["call_sid"] for c in json.loads(out)["items"]] == ["CA" + "1" * 32]

    rc, out, _ = await cli("calls", "show", "CA" + "1" * 32)
    assert rc == 0 and "caller_hangup" in out and NUMBER in out
    rc, out, _ = await cli("calls", "list", "--agent", "agent_other", "--json")
    assert json.loads(out)["items"] == []


async def test_errors(cli: Cli, bridge: BridgeUnderTest) -> None:
    rc, out, err = await cli("calls", "show", "CA404")
    assert rc == 1 and out == "" and err.startswith("bridge calls: error: call_sid: ")
    assert "(HTTP 404)" in err
    rc, _, err = await cli("calls", "hangup", "CA404")
    assert rc == 1 and "(HTTP 404)" in err
    _record(bridge, "CA" + "3" * 32, "completed", 1700000000.0)
    rc, _, err = await cli("calls", "hangup", "CA" + "3" * 32)
    assert rc == 1 and "not live" in err and "(HTTP 409)" in err
    # transfers are deny-by-default (telephony.transfer_allow empty here): 403 naming --to
    rc, _, err = await cli("calls", "transfer", "CA404", "+15550009999")
    assert rc == 1 and "not an allowed transfer destination" in err and "(HTTP 403)" in err
    rc, _, err = await cli("calls", "list", "--limit", "0")
    assert rc == 1 and err.startswith("bridge calls: error: limit: ")
    rc, _, err = await cli("calls", "list", "--number", "123")
    assert rc == 1 and "number: " in err and "(HTTP 400)" in err


async def test_show_prints_the_transcript_and_latency(cli: Cli, bridge: BridgeUnderTest) -> None:
    sid = "CA" + "4" * 32
    entries = (
        UserSaid(t=1.25, text="where is my order"),
        AgentTurn(t=1.3, agent_audio_ms=420.0, sent_ms=421.0, heard_ms=440.0),
        AgentSaid(t=1.5, text="Let me check."),
        Keypad(t=2.0, digit="*"),
        Ended(t=3.0, reason="caller_hangup"),
    )
    summary = LatencySummary(turns=1, agent_audio=StageStats(n=1, median_ms=420.0, worst_ms=420.0))
    bridge.app.state.store.record_call(
        CallRecord(call_sid=sid, status="completed", transcript=entries, latency=summary)
    )
    rc, out, err = await cli("calls", "show", sid)
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    start = lines.index(f"Transcript of call {sid}")
    assert [line.split("s  ", 1)[1] for line in lines[start + 1 : start + 6]] == [
        "caller: where is my order",
        "turn: caller stopped; agent audio +420 ms, sent +421 ms, heard +440 ms",
        "agent: Let me check.",
        "keypad: *",
        "call ended: caller_hangup",
    ]
    assert "agent audio   median 420 ms, worst 420 ms (n=1)" in out
    assert "'kind'" not in out  # the transcript is not dumped as a raw field
