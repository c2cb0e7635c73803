"""Fixtures for the console tests: a bridge with both emulators, and headless Chromium.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``, or ``BRIDGE_CHROMIUM``)
driven by Playwright; Playwright never downloads a browser here.  Without it the browser
tests skip with one line, unless ``BRIDGE_REQUIRE_BROWSER=1`` (set by ``.ci/run``),
which makes that a failure.  Screenshots go to ``artifacts/console/`` (or
``BRIDGE_ARTIFACTS``); with ``BRIDGE_UPDATE_SCREENSHOTS=1`` the README's two are
rewritten under ``docs/img/`` too.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.admin.stack import NUMBER, OLD_VOICE_URL, BridgeUnderTest, admin_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("BRIDGE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("BRIDGE_ARTIFACTS", ROOT / "artifacts")) / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_chromium() -> Path:
    """The Chromium binary; skip (or fail, under BRIDGE_REQUIRE_BROWSER=1) without it."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"no Chromium at {CHROMIUM} (apt-get install chromium): browser tests skipped"
    if os.environ.get("BRIDGE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"BRIDGE_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def chromium_binary() -> Path:
    """Ask for it first in a browser test: it skips before any bridge is started."""
    return require_chromium()


@pytest.fixture
async def console_bridge(
    tmp_path: Path, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> AsyncIterator[BridgeUnderTest]:
    """A bridge (admin token set) on loopback; NUMBER is on the emulated Twilio account."""
    twilio_emulator.state.add_number(NUMBER, voice_url=OLD_VOICE_URL)
    async with admin_bridge(tmp_path, platform_emulator, twilio_emulator) as b:
        yield b
