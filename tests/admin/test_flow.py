"""The issue's "done when", end to end on loopback: bridge + Twilio and platform emulators.

import a number → it is on the platform and the Twilio number points at the bridge →
a synthetic call reaches the assigned agent → reassign → the next call reaches the new
agent without restart → the calls show in /admin/calls → restart the bridge (a new app
over the same SQLite file, with the platform's number list failing) → records and
routes are still there, and a call is still routed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from bridge.emulator.platform.state import Fault
from bridge.emulator.twilio.script import CallScript
from tests.admin.stack import CALLER, NUMBER, OLD_VOICE_URL, admin_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

SHORT_CALL = CallScript(hangup_at=3.0)  # call time; the emulator runs it 10x faster


async def _call(twilio: TwilioEmulator) -> str:
    entry = await twilio.state.place_inbound(to=NUMBER, from_=CALLER, script=SHORT_CALL)
    assert entry.result.status == "completed", entry.result.reason
    assert entry.result.streams, "the bridge never connected a media stream"
    sid: str = entry.call.call_sid
    return sid


async def _record(c: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    # The record is finished by the status callback and the stream's end: wait for both.
    for _ in range(300):
        r = await c.get(f"/admin/calls/{sid}")
        if r.status_code == 200 and r.json()["status"] == "completed" and r.json()["end_reason"]:
            rec: dict[str, Any] = r.json()
            return rec
        await asyncio.sleep(0.01)
    raise AssertionError(f"call {sid} never completed in the records: {r.text}")


async def test_done_when(
    tmp_path: Path, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    twilio_emulator.state.add_number(NUMBER, voice_url=OLD_VOICE_URL)
    async with admin_bridge(tmp_path, platform_emulator, twilio_emulator) as bridge:
        port = bridge.port
        async with bridge.client() as c:
            agents = []
            for name in ("First", "Second"):
                r = await c.post("/admin/agents", json={"name": name, "prompt": "Be brief."})
                assert r.status_code == 201, r.text
                agents.append(r.json()["agent_id"])
            first, second = agents

            # Import: on the platform with its agent, and Twilio points at the bridge.
            r = await c.post("/admin/numbers", json={"number": NUMBER, "agent_id": first})
            assert r.status_code == 201, r.text
            on_platform = [
                n for n in platform_emulator.state.list_phone_numbers() if n.phone_number == NUMBER
            ]
            assert len(on_platform) == 1
            assert on_platform[0].assigned_agent is not None
            assert on_platform[0].assigned_agent.agent_id == first
            tw = twilio_emulator.state.find_number(NUMBER)
            assert tw is not None and tw.voice_url == f"{bridge.url}/twilio/inbound"

            # A call reaches the assigned agent.
            sid1 = await _call(twilio_emulator)
            assert [x.agent_id for x in platform_emulator.conversations()] == [first]

            # Reassign: the next call reaches the new agent, no restart.
            r = await c.patch(f"/admin/numbers/{NUMBER}", json={"agent_id": second})
            assert r.status_code == 200, r.text
            sid2 = await _call(twilio_emulator)
            assert [x.agent_id for x in platform_emulator.conversations()] == [first, second]

            # Both calls are in /admin/calls with their records.
            rec1, rec2 = await _record(c, sid1), await _record(c, sid2)
            assert (rec1["agent_id"], rec2["agent_id"]) == (first, second)
            for rec in (rec1, rec2):
                assert (rec["to_number"], rec["from_number"]) == (NUMBER, CALLER)
                assert rec["bytes_in"] > 0 and rec["conversation_id"]
            listed = (await c.get("/admin/calls", params={"number": NUMBER})).json()["items"]
            assert [x["call_sid"] for x in listed] == [sid2, sid1]

    # Restart over the same database while the platform's number list is failing: the
    # routes come from the store, and the last known table keeps serving.
    platform_emulator.state.inject_fault(
        Fault(path_prefix="/v1/convai/phone-numbers", status=503, method="GET", times=100)
    )
    async with admin_bridge(tmp_path, platform_emulator, twilio_emulator, port=port) as bridge:
        routing = bridge.app.state.routing
        for _ in range(500):
            if routing.last_sync_error is not None:
                break
            await asyncio.sleep(0.01)
        assert routing.last_sync_error is not None, "the start-up sync should have failed"
        async with bridge.client() as c:
            numbers = (await c.get("/admin/numbers")).json()["items"]
            assert [(n["number"], n["agent_id"]) for n in numbers] == [(NUMBER, second)]
            calls = (await c.get("/admin/calls")).json()["items"]
            assert {x["call_sid"]: x["agent_id"] for x in calls} == {sid1: first, sid2: second}

            sid3 = await _call(twilio_emulator)
            assert [x.agent_id for x in platform_emulator.conversations()][-1] == second
            assert (await _record(c, sid3))["agent_id"] == second
