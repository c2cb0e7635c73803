"""A real bridge on loopback wired to both emulators, for admin API and CLI tests.

The bridge under test of :mod:`tests.fixtures.bridge`, configured through the real loader
from a TOML file plus the environment, with the store in a file so a second
:func:`admin_bridge` over the same path is a restart.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.config import Config
from tests.fixtures.bridge import BridgeUnderTest, bridge_config, free_port, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

TOKEN = "admin-test-token-0123456789-abcdefghij"  # >= 32 characters
NUMBER = "+15550001111"  # on the emulated Twilio account
CALLER = "+15550002222"
OLD_VOICE_URL = "https://old.example.com/voice"  # where NUMBER pointed before the bridge

__all__ = ["BridgeUnderTest", "free_port"]  # (what the admin and CLI tests import from here)


def admin_config(
    tmp: Path,
    platform: PlatformEmulator,
    twilio: TwilioEmulator,
    *,
    port: int,
    token: str | None = TOKEN,
) -> Config:
    toml = tmp / "bridge.toml"
    # Every test client is 127.0.0.1, and the auth and OpenAPI tests send many bad tokens:
    # the failure throttle has its own tests (tests/admin/test_auth.py).
    toml.write_text(
        "[platform]\nsync_interval_s = 0\nrequest_timeout_s = 5.0\n"
        "[admin]\nauth_failures_per_minute = 10000\n",
        encoding="utf-8",
    )
    env = {
        "BRIDGE_HOST": "127.0.0.1",
        "BRIDGE_PORT": str(port),
        "BRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BRIDGE_DB": str(tmp / "bridge.db"),
    }
    if token is not None:
        env["BRIDGE_ADMIN_TOKEN"] = token
    return bridge_config(platform, twilio=twilio, toml=toml, **env)


@contextlib.asynccontextmanager
async def admin_bridge(
    tmp: Path,
    platform: PlatformEmulator,
    twilio: TwilioEmulator,
    *,
    port: int | None = None,
    token: str | None = TOKEN,
) -> AsyncIterator[BridgeUnderTest]:
    port = port or free_port()
    config = admin_config(tmp, platform, twilio, port=port, token=token)
    async with running_bridge(platform, config, port=port) as bridge:
        yield bridge


@pytest.fixture
async def bridge(
    tmp_path: Path, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> AsyncIterator[BridgeUnderTest]:
    """A bridge on loopback; NUMBER is on the Twilio account, pointing at OLD_VOICE_URL."""
    twilio_emulator.state.add_number(NUMBER, voice_url=OLD_VOICE_URL)
    async with admin_bridge(tmp_path, platform_emulator, twilio_emulator) as b:
        yield b
