"""`bridge calls dial` against a live bridge wired to the Twilio emulator."""

from __future__ import annotations

import asyncio
import json

import pytest

from bridge.cli import main
from bridge.emulator.twilio.callee import CalleeMode
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator
from tests.telephony.conftest import ADMIN_TOKEN, running_phone

CALLEE = "+14155550166"


async def test_dial_places_a_call_and_reports_its_sid(
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    async with running_phone(platform_emulator, twilio_emulator) as p:
        agent = p.platform.create_agent(input_format="ulaw_8000", output_format="ulaw_8000")
        ours = p.number_for(agent)
        p.twilio.state.set_callee(CALLEE, CalleeMode.BUSY)

        async def cli(*argv: str) -> tuple[int, str, str]:
            capsys.readouterr()
            rc = await asyncio.to_thread(main, [*argv, "--url", p.server.http_url])
            out, err = capsys.readouterr()
            return rc, out, err

        rc, out, err = await cli(
            "calls", "dial", CALLEE, "--from", ours, "--var", "order=42", "--json"
        )
        assert (rc, err) == (0, "")
        placed = json.loads(out)
        assert placed["to"] == CALLEE and placed["agent_id"] == agent
        entry = p.twilio.state.calls[placed["call_sid"]]
        assert entry.result.to == CALLEE

        rc, out, err = await cli("calls", "dial", CALLEE, "--from", "+14155559999")
        assert rc == 1 and out == ""
        assert err.startswith("bridge calls: error: from: ") and "(HTTP 422)" in err

        rc, out, err = await cli("calls", "dial", CALLEE, "--from", ours, "--var", "novalue")
        assert rc == 2 and "--var" in err
        await p.finished(placed["call_sid"])
