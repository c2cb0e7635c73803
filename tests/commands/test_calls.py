"""`bridge calls …` against a live bridge."""

from __future__ import annotations

import json

from bridge.store import CallRecord
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
    rc, _, err = await cli("calls", "list", "--limit", "0")
    assert rc == 1 and err.startswith("bridge calls: error: limit: ")
    rc, _, err = await cli("calls", "list", "--number", "123")
    assert rc == 1 and "number: " in err and "(HTTP 400)" in err
