"""Transfers end to end: the agent's transfer_call tool → <Dial> after its last words."""

from __future__ import annotations

import logging

import pytest

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause
from bridge.emulator.twilio.twiml import Dial, DialTarget
from tests.fixtures.bridge import BridgeUnderTest
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator
from tests.telephony.conftest import running_phone

DESK = "+14155550100"
LAST_WORDS_MS = 800


def _transferring_agent(p: BridgeUnderTest, parameters: dict[str, str]) -> str:
    return p.platform.create_agent(
        behaviour={
            "mode": "silent",
            "steps": [
                {"type": "play", "ms": LAST_WORDS_MS, "text": "Let me put you through."},
                {"type": "tool_call", "tool_name": "transfer_call", "parameters": parameters},
            ],
        },
        input_format="ulaw_8000",
        output_format="ulaw_8000",
    )


def _dial(p: BridgeUnderTest, res: CallResult) -> Dial:
    """The <Dial> that moved the caller: the bridge's REST update of the live call, or
    its answer to the <Connect action> request (either is Twilio's way to transfer)."""
    fetch = res.fetches[-1]
    assert fetch.why in ("rest-update", "connect-action"), fetch
    (verb,) = fetch.verbs
    assert isinstance(verb, Dial)
    return verb


async def test_transfer_plays_the_last_words_then_dials_and_answers_the_tool(
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.telephony")
    async with running_phone(
        platform_emulator, twilio_emulator, transfer_allow=("+1415555*",), transfer_timeout_s=25
    ) as p:
        agent = _transferring_agent(p, {"phone_number": "+1 (415) 555-0100", "reason": "billing"})
        res = await p.call(agent, CallScript.of(max_duration_s=20))
        assert res.outcome is Outcome.COMPLETED, res.reason
        assert res.transfer_to == DESK
        dial = _dial(p, res)
        assert dial.targets == (DialTarget("number", DESK),)
        assert dial.timeout == 25
        # The stream ended from our side, after the caller had heard all the last words.
        stream = res.stream
        assert stream is not None and stream.ended_by in ("bridge", "rest")
        assert len(stream.heard_audio()) >= LAST_WORDS_MS * 8
        assert all(m.echoed is not None and not m.cleared for m in stream.marks)

        conv = await p.ended_conversation(agent)
        (result,) = conv.tool_results
        assert not result.is_error
        assert DESK in result.result
        rec = p.record(res.call_sid)
        assert rec.end_reason == "transfer"
        assert rec.transfer_target == DESK
        logged = [r for r in caplog.records if r.getMessage() == "telephony.transfer"]
        assert len(logged) == 1


async def test_sip_transfer_to_an_allowed_host(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(
        platform_emulator, twilio_emulator, transfer_allow=("sip:*@pbx.example.com",)
    ) as p:
        agent = _transferring_agent(p, {"sip_uri": "sip:sales@PBX.example.com"})
        res = await p.call(agent, CallScript.of(max_duration_s=20))
        assert _dial(p, res).targets == (DialTarget("sip", "sip:sales@pbx.example.com"),)


async def test_destination_off_the_allow_list_is_answered_with_is_error(
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The default allow-list is empty: every agent transfer is refused.
    async with running_phone(platform_emulator, twilio_emulator) as p:
        agent = _transferring_agent(p, {"phone_number": "+19005550100"})
        res = await p.call(agent, CallScript.of(Pause(3.0), CallerHangsUp(), max_duration_s=20))
        assert res.outcome is Outcome.COMPLETED
        assert res.transfer_to is None
        assert res.stream is not None and res.stream.ended_by == "caller"
        conv = await p.ended_conversation(agent)
        (result,) = conv.tool_results
        assert result.is_error
        assert "not an allowed transfer destination" in result.result
        rec = p.record(res.call_sid)
        assert rec.end_reason == "caller_hangup"
        assert rec.transfer_target is None
        assert any(r.getMessage() == "telephony.transfer_refused" for r in caplog.records)


async def test_malformed_destination_is_answered_with_is_error(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator, transfer_allow=("+*",)) as p:
        agent = _transferring_agent(p, {"phone_number": "the front desk"})
        res = await p.call(agent, CallScript.of(Pause(2.0), CallerHangsUp(), max_duration_s=20))
        assert res.transfer_to is None
        (result,) = (await p.ended_conversation(agent)).tool_results
        assert result.is_error and "E.164" in result.result


async def test_fallback_number_takes_the_same_path_when_the_agent_fails(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    fallback = "+14155550199"
    async with running_phone(
        platform_emulator,
        twilio_emulator,
        calls={"on_agent_failure": "transfer", "fallback_number": fallback},
    ) as p:
        agent = p.platform.create_agent(
            behaviour={
                "mode": "silent",
                "greeting": False,
                "steps": [{"type": "close", "code": 1011}],
            },
            input_format="ulaw_8000",
            output_format="ulaw_8000",
        )
        res = await p.call(agent, CallScript.of(max_duration_s=20))
        assert res.transfer_to == fallback
        assert _dial(p, res).targets == (DialTarget("number", fallback),)
        rec = p.record(res.call_sid)
        assert rec.end_reason == "agent_failed"
        assert rec.transfer_target == fallback
