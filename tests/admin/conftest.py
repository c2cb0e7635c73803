"""A bridge wired to both emulators, with a Twilio number on the emulated account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.admin.stack import BridgeUnderTest, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

NUMBER = "+15550001111"
CALLER = "+15550002222"
OLD_VOICE_URL = "https://old.example.com/voice"


@pytest.fixture
async def bridge(
    tmp_path: Path, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> AsyncIterator[BridgeUnderTest]:
    twilio_emulator.state.add_number(NUMBER, voice_url=OLD_VOICE_URL)
    async with running_bridge(tmp_path, platform_emulator, twilio_emulator) as b:
        yield b
