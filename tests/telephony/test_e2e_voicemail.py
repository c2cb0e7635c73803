"""Answering machines on outbound calls: each voicemail policy does what it says."""

from __future__ import annotations

from typing import Any

from bridge.emulator.twilio.callee import CalleeMode
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.twiml import Hangup, Say
from tests.fixtures.bridge import BridgeUnderTest
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator
from tests.telephony.conftest import running_phone

CALLEE = "+14155550188"
MESSAGE = "This is the clinic. Please call us back about your appointment."


async def _dial(
    p: BridgeUnderTest, mode: CalleeMode, detection: str = "DetectMessageEnd"
) -> tuple[str, CallResult]:
    agent = p.platform.create_agent(
        behaviour={"mode": "silent"},
        first_message="Hello, this is the clinic.",
        input_format="ulaw_8000",
        output_format="ulaw_8000",
    )
    ours = p.number_for(agent)
    p.twilio.state.set_callee(CALLEE, mode)
    p.twilio.state.speed = 20.0
    r = await p.admin(
        "POST", "/calls", {"to": CALLEE, "from": ours, "machine_detection": detection}
    )
    assert r.status_code == 201, r.text
    sid = r.json()["call_sid"]
    return agent, await p.finished(sid)


def _amd_callbacks(res: CallResult) -> list[Any]:
    return [(c.event, c.status) for c in res.callbacks if c.kind == "amd"]


async def test_hangup_policy_ends_the_call_on_the_machine(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator, voicemail_action="hangup") as p:
        agent, res = await _dial(p, CalleeMode.VOICEMAIL)
        assert res.answered_by == "machine_end_beep"
        assert _amd_callbacks(res) == [("machine_end_beep", 204)]
        assert res.outcome is Outcome.COMPLETED
        # Ended by us right after the verdict (4.5 s in), long before the machine's 30 s.
        assert res.duration_s is not None and res.duration_s < 10
        assert not any(isinstance(v, Say) for v in res.experience)
        rec = p.record(res.call_sid)
        assert rec.end_reason == "voicemail"
        assert {"event": "answered_by", "value": "machine_end_beep"} in [
            {k: e[k] for k in ("event", "value")} for e in rec.events if e["event"] == "answered_by"
        ]
        assert (await p.ended_conversation(agent)).contextual_updates == []


async def test_message_policy_plays_the_message_then_hangs_up(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(
        platform_emulator, twilio_emulator, voicemail_action="message", voicemail_message=MESSAGE
    ) as p:
        _, res = await _dial(p, CalleeMode.VOICEMAIL)
        assert res.answered_by == "machine_end_beep"
        # The stream was ended and the call moved on to the message.
        assert res.experience[1:] == [Say(MESSAGE), Hangup()]
        assert res.duration_s is not None and res.duration_s < 15
        assert p.record(res.call_sid).end_reason == "voicemail"


async def test_agent_policy_tells_the_agent_and_keeps_the_call(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator, voicemail_action="agent") as p:
        agent, res = await _dial(p, CalleeMode.VOICEMAIL)
        conv = await p.ended_conversation(agent)
        (note,) = conv.contextual_updates
        assert "answering machine" in note and "Leave a short voicemail message now" in note
        # The bridge did not end it: the machine hung up at the end of its recording.
        rec = p.record(res.call_sid)
        assert rec.end_reason == "caller_hangup"
        assert res.duration_s is not None and res.duration_s >= 25


async def test_agent_policy_with_enable_waits_for_the_beep(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator, voicemail_action="agent") as p:
        agent, res = await _dial(p, CalleeMode.VOICEMAIL, detection="Enable")
        assert res.answered_by == "machine_start"
        (note,) = (await p.ended_conversation(agent)).contextual_updates
        assert "Wait for the beep" in note


async def test_a_person_answering_goes_on_as_a_normal_call(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator, voicemail_action="hangup") as p:
        agent, res = await _dial(p, CalleeMode.HUMAN)
        assert res.answered_by == "human"
        assert _amd_callbacks(res) == [("human", 204)]
        rec = p.record(res.call_sid)
        assert rec.end_reason == "caller_hangup"
        assert (await p.ended_conversation(agent)).contextual_updates == []
