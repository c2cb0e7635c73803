"""Outbound calls end to end: POST /admin/calls → Twilio emulator → callee → bridge → agent."""

from __future__ import annotations

import asyncio
import time

from bridge.emulator.twilio.callee import CalleeMode
from bridge.emulator.twilio.program import Outcome
from tests.fixtures.bridge import BridgeUnderTest
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator
from tests.telephony.conftest import running_phone

CALLEE = "+14155550177"


def _agent(p: BridgeUnderTest) -> str:
    return p.platform.create_agent(
        behaviour={"mode": "echo"}, input_format="ulaw_8000", output_format="ulaw_8000"
    )


async def test_outbound_call_is_placed_answered_and_the_agent_hears_the_callee(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator) as p:
        agent = _agent(p)
        ours = p.number_for(agent)
        p.twilio.state.set_callee(CALLEE, CalleeMode.HUMAN)
        r = await p.admin(
            "POST",
            "/calls",
            {
                "to": CALLEE,
                "from": ours,
                "first_message": "Hi, this is the clinic calling.",
                "dynamic_variables": {"patient": "Ada"},
            },
        )
        assert r.status_code == 201, r.text
        body = r.json()
        sid = body["call_sid"]
        assert body == {
            "call_sid": sid,
            "status": "queued",
            "to": CALLEE,
            "from": ours,
            "agent_id": agent,
        }
        res = await p.finished(sid)
        assert res.outcome is Outcome.COMPLETED, res.reason
        assert res.direction == "outbound-api"
        # The stream came back to us carrying the call context.
        stream = res.stream
        assert stream is not None and stream.url == "wss://bridge.test/twilio/media"
        assert stream.custom_parameters["direction"] == "outbound"
        # With a stream token for "any call" (Twilio names the call after the TwiML is
        # sent), bound to the account and every other parameter; the agent never sees it.
        assert stream.custom_parameters["bridge_token"].split(".")[2] == "a"
        assert "bridge_token" not in (await p.ended_conversation(agent)).dynamic_variables
        # Twilio reported every stage and the bridge took each callback.
        events = [(c.event, c.status) for c in res.callbacks if c.kind == "status"]
        assert events == [
            ("initiated", 204),
            ("ringing", 204),
            ("answered", 204),
            ("completed", 204),
        ]

        conv = await p.ended_conversation(agent)
        # The agent heard the callee: its VAD found the callee's utterances in our audio.
        assert len(conv.utterances_ms) >= 2
        assert conv.audio_bytes["ulaw_8000"] > 8000
        assert conv.dynamic_variables["patient"] == "Ada"
        assert conv.dynamic_variables["caller_id"] == CALLEE
        assert conv.dynamic_variables["called_number"] == ours
        assert conv.conversation_config_override == {
            "agent": {"first_message": "Hi, this is the clinic calling."}
        }
        # And the callee heard the agent.
        assert len(stream.heard_audio()) > 8000

        r = await p.admin("GET", f"/calls/{sid}")
        assert r.status_code == 200, r.text
        rec = r.json()
        assert rec["direction"] == "outbound"
        assert (rec["from_number"], rec["to_number"]) == (ours, CALLEE)
        assert rec["status"] == "completed"
        assert rec["agent_id"] == agent
        assert rec["conversation_id"] == conv.conversation_id


async def test_progress_is_recorded_while_ringing_and_no_answer_ends_it(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator) as p:
        agent = _agent(p)
        ours = p.number_for(agent)
        p.twilio.state.set_callee(CALLEE, CalleeMode.NO_ANSWER)
        p.twilio.state.speed = 20.0  # 10 s of ringing in half a second
        r = await p.admin("POST", "/calls", {"to": CALLEE, "from": ours, "ring_timeout": 10})
        assert r.status_code == 201, r.text
        sid = r.json()["call_sid"]
        # Once the ringing callback has been answered, the admin API shows "ringing".
        deadline = time.monotonic() + 5
        while not any(
            c.event == "ringing" and c.status == 204
            for c in p.twilio.state.calls[sid].result.callbacks
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        r = await p.admin("GET", f"/calls/{sid}")
        assert r.json()["status"] == "ringing"
        listing = (await p.admin("GET", "/calls?live=true")).json()
        assert sid in [c["call_sid"] for c in listing["items"]]

        res = await p.finished(sid)
        assert res.status == "no-answer"
        rec = p.record(sid)
        assert rec.status == "no-answer"
        assert rec.end_reason == "no_answer"
        assert p.platform.conversations(agent) == []
        # Its capacity hold is gone with it.
        assert p.telephony.capacity.count(ours) == 0


async def test_busy_callee(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator) as p:
        ours = p.number_for(_agent(p))
        p.twilio.state.set_callee(CALLEE, CalleeMode.BUSY)
        r = await p.admin("POST", "/calls", {"to": CALLEE, "from": ours})
        sid = r.json()["call_sid"]
        res = await p.finished(sid)
        assert res.status == "busy"
        assert p.record(sid).status == "busy"


async def test_invalid_requests_are_refused_naming_the_field(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator) as p:
        ours = p.number_for(_agent(p))
        cases = [
            ({"to": "4155550177", "from": ours}, "to"),
            ({"to": CALLEE, "from": "+14155559999"}, "from"),
            ({"to": CALLEE, "phone_number_id": "pn_nope"}, "phone_number_id"),
            ({"to": CALLEE}, "body"),
            (
                {"to": CALLEE, "from": ours, "dynamic_variables": {"system__x": "1"}},
                "dynamic_variables",
            ),
            ({"to": CALLEE, "from": ours, "ring_timeout": 1}, "ring_timeout"),
            ({"to": CALLEE, "from": ours, "machine_detection": "maybe"}, "machine_detection"),
        ]
        for body, field in cases:
            r = await p.admin("POST", "/calls", body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["error"]["field"] == field, (body, r.text)
        r = await p.admin("POST", "/calls", None)
        assert r.status_code == 422
        # Nothing was dialled.
        assert p.twilio.state.calls == {}


async def test_rate_limit_per_number_answers_429_with_retry_after(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(
        platform_emulator, twilio_emulator, outbound_calls_per_second=0.2, outbound_burst=1
    ) as p:
        agent = _agent(p)
        ours, other = p.number_for(agent), p.number_for(agent)
        p.twilio.state.set_callee(CALLEE, CalleeMode.BUSY)
        first = await p.admin("POST", "/calls", {"to": CALLEE, "from": ours})
        assert first.status_code == 201
        second = await p.admin("POST", "/calls", {"to": CALLEE, "from": ours})
        assert second.status_code == 429, second.text
        assert second.json()["error"]["field"] == "from"
        assert 1 <= int(second.headers["retry-after"]) <= 5
        # The limit is per number: another of ours may still call.
        third = await p.admin("POST", "/calls", {"to": CALLEE, "from": other})
        assert third.status_code == 201
        assert len(p.twilio.state.calls) == 2


async def test_per_number_concurrency_cap_applies_to_outbound_calls(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(
        platform_emulator,
        twilio_emulator,
        max_concurrent_calls_per_number=1,
        outbound_calls_per_second=100.0,
    ) as p:
        ours = p.number_for(_agent(p))
        p.twilio.state.set_callee(CALLEE, CalleeMode.NO_ANSWER)
        p.twilio.state.speed = 20.0
        first = await p.admin("POST", "/calls", {"to": CALLEE, "from": ours, "ring_timeout": 10})
        assert first.status_code == 201
        second = await p.admin("POST", "/calls", {"to": CALLEE, "from": ours})
        assert second.status_code == 429
        assert "concurrent-call cap" in second.json()["error"]["message"]
        await p.finished(first.json()["call_sid"])
        # The first call is over: the number is free again.
        third = await p.admin("POST", "/calls", {"to": CALLEE, "from": ours, "ring_timeout": 5})
        assert third.status_code == 201, third.text
        await p.finished(third.json()["call_sid"])
