"""Opt-in per number (admin API / CLI ``--record``), and the notice callers hear first."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause
from bridge.emulator.twilio.twiml import Connect, Say
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.recording.conftest import finalised, read_wav, recording_bridge

ADMIN_TOKEN = "recording-admin-token-0123456789abcdef"
NOTICE = "This call is recorded."


async def test_only_numbers_with_the_record_flag_are_recorded_and_hear_the_notice(
    platform_emulator: PlatformEmulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with recording_bridge(
        platform_emulator,
        tmp_path,
        recording={"enabled": False, "notice": NOTICE},
        env={"BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN},
    ) as bridge:
        agent = bridge.platform.create_agent(behaviour={"mode": "echo"}, first_message="Hello.")
        flagged, plain = bridge.number_for(agent), bridge.number_for(agent)
        # The CLI sets the flag through the admin API; the store keeps it.
        monkeypatch.setenv("BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)
        argv = ["numbers", "update", flagged, "--record", "--url", bridge.url]
        assert await asyncio.to_thread(main, argv) == 0, capsys.readouterr().err
        assert "record" in capsys.readouterr().out
        (stored,) = [n for n in bridge.store.list_numbers() if n.number == flagged]
        assert stored.record
        r = await bridge.admin("GET", f"/numbers/{plain}")
        assert r.json()["record"] is False

        script = CallScript.of(Pause(0.6), CallerHangsUp())
        recorded = await bridge.call(agent, script, to=flagged)
        assert recorded.outcome is Outcome.COMPLETED, recorded.reason
        wav = await finalised(bridge, recorded.call_sid)
        assert wav.frames >= 0.5 * 8000
        says = [v for v in recorded.experience if isinstance(v, Say | Connect)]
        assert isinstance(says[0], Say) and says[0].text == NOTICE
        assert isinstance(says[1], Connect)  # the agent only after the notice

        unrecorded = await bridge.call(agent, script, to=plain)
        assert unrecorded.outcome is Outcome.COMPLETED, unrecorded.reason
        assert not any(isinstance(v, Say) for v in unrecorded.experience)
        assert not (tmp_path / f"{unrecorded.call_sid}.wav").exists()
        assert bridge.metric("bridge_recordings_total") == 1

        # --no-record turns it off again.
        argv = ["numbers", "update", flagged, "--no-record", "--url", bridge.url]
        assert await asyncio.to_thread(main, argv) == 0
        again = await bridge.call(agent, script, to=flagged)
        assert not (tmp_path / f"{again.call_sid}.wav").exists()
    assert read_wav(tmp_path / f"{recorded.call_sid}.wav").frames == wav.frames
