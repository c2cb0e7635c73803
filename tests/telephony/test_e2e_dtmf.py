"""Keypad tones both ways, end to end."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from bridge.audio.g711 import ulaw_decode
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Press
from bridge.log import JsonFormatter
from bridge.telephony.dtmf_tones import DtmfDetector
from tests.fixtures.bridge import BridgeUnderTest
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator
from tests.telephony.conftest import running_phone


def _listener(p: BridgeUnderTest) -> str:
    return p.platform.create_agent(
        behaviour={"mode": "silent", "greeting": False},
        input_format="ulaw_8000",
        output_format="ulaw_8000",
    )


async def test_each_digit_reaches_the_agent_and_only_its_count_is_recorded(
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys = "7391#"
    caplog.set_level(logging.DEBUG)
    async with running_phone(platform_emulator, twilio_emulator, dtmf_mode="collect") as p:
        agent = _listener(p)
        res = await p.call(
            agent,
            CallScript.of(
                Pause(0.5),
                Press(keys, gap_s=0.2),
                Press("58", gap_s=0.2),
                Pause(0.5),
                CallerHangsUp(),
            ),
        )
        conv = await p.ended_conversation(agent)
        assert conv.user_messages == ["7391"]  # the agent still gets the digits
        r = await p.admin("GET", f"/calls/{res.call_sid}")
        assert r.status_code == 200, r.text
    keypad = [
        {k: v for k, v in e.items() if k != "at"}
        for e in r.json()["events"]
        if str(e["event"]).startswith("dtmf")
    ]
    assert keypad == [
        {"event": "dtmf_delivered", "count": 4, "why": "terminator"},
        {"event": "dtmf_unsent", "count": 2},  # "58", pressed as the call ended
    ]
    assert "7391" not in r.text and "58" not in json.dumps(keypad)
    # Nor in any log line of the whole call, at debug level, as the bridge writes them.
    fmt = JsonFormatter()
    lines = [fmt.format(rec) for rec in caplog.records if rec.name.startswith("bridge")]
    assert any('"telephony.keypad"' in line for line in lines)
    assert not [line for line in lines if "7391" in line or '"digit"' in line]


async def test_store_digits_keeps_each_digit_in_the_record(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator, store_digits=True) as p:
        agent = _listener(p)
        res = await p.call(
            agent, CallScript.of(Pause(0.5), Press("42#", gap_s=0.3), Pause(0.5), CallerHangsUp())
        )
        conv = await p.ended_conversation(agent)
        assert conv.user_messages == ["4", "2", "#"]
        assert conv.contextual_updates == []
        r = await p.admin("GET", f"/calls/{res.call_sid}")
        assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert [e["digit"] for e in events if e["event"] == "dtmf"] == ["4", "2", "#"]


async def test_collect_mode_sends_one_entry_at_hash(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator, dtmf_mode="collect") as p:
        agent = _listener(p)
        await p.call(
            agent, CallScript.of(Pause(0.5), Press("1234#", gap_s=0.2), Pause(0.5), CallerHangsUp())
        )
        conv = await p.ended_conversation(agent)
        assert conv.user_messages == ["1234"]


async def test_collect_mode_sends_the_entry_after_a_pause(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(
        platform_emulator, twilio_emulator, dtmf_mode="collect", dtmf_collect_timeout_s=0.5
    ) as p:
        agent = _listener(p)
        # At 10x call speed the 10 s pauses are 1 s of wall time, twice the timeout.
        await p.call(
            agent,
            CallScript.of(
                Pause(0.5),
                Press("77", gap_s=0.2),
                Pause(10.0),
                Press("9"),
                Pause(10.0),
                CallerHangsUp(),
            ),
            speed=10.0,
        )
        conv = await p.ended_conversation(agent)
        assert conv.user_messages == ["77", "9"]


async def test_digits_as_contextual_updates(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(
        platform_emulator, twilio_emulator, dtmf_deliver="contextual_update"
    ) as p:
        agent = _listener(p)
        await p.call(agent, CallScript.of(Pause(0.5), Press("5"), Pause(0.5), CallerHangsUp()))
        conv = await p.ended_conversation(agent)
        assert conv.user_messages == []
        assert conv.contextual_updates == ["The caller pressed 5 on the keypad."]


async def test_send_dtmf_digits_are_recovered_from_what_the_caller_heard(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator) as p:
        agent = p.platform.create_agent(
            behaviour={
                "mode": "silent",
                "steps": [
                    {"type": "play", "ms": 400, "text": "Dialling the extension."},
                    {
                        "type": "tool_call",
                        "tool_name": "send_dtmf",
                        "parameters": {"digits": "1w59*#"},
                    },
                    {
                        "type": "tool_call",
                        "tool_name": "send_dtmf",
                        "parameters": {"digits": "12x"},
                    },
                ],
            },
            input_format="ulaw_8000",
            output_format="ulaw_8000",
        )
        res = await p.call(agent, CallScript.of(Pause(7.0), CallerHangsUp(), max_duration_s=30))
        stream = res.stream
        assert stream is not None
        heard = np.frombuffer(ulaw_decode(stream.heard_audio()), dtype="<i2")
        found = DtmfDetector().feed_pcm(heard)
        assert "".join(d.digit for d in found) == "159*#"
        # The pause is there: "5" starts ~0.7 s after "1" (tone+gap 0.2 s + w 0.5 s).
        assert found[1].at_s - found[0].at_s > 0.6
        conv = await p.ended_conversation(agent)
        ok, bad = conv.tool_results
        assert not ok.is_error and "1w59*#" in ok.result
        assert bad.is_error and "invalid characters" in bad.result
