"""A real bridge on loopback wired to both emulators, for admin API and CLI tests.

Configured through the real loader (a TOML file plus the environment mapping), with the
store in a file so a second ``running_bridge`` over the same path is a restart.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.asgi import running_server
from bridge.config import Config, load_config
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

TOKEN = "admin-test-token-0123456789-abcdefghij"  # >= 32 characters
NUMBER = "+15550001111"  # on the emulated Twilio account
CALLER = "+15550002222"
OLD_VOICE_URL = "https://old.example.com/voice"  # where NUMBER pointed before the bridge


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class BridgeUnderTest:
    url: str
    token: str
    app: Starlette
    config: Config
    port: int

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"authorization": f"Bearer {token or self.token}"},
            timeout=30.0,
        )

    def env(self) -> dict[str, str]:
        """What a CLI user would export to reach this bridge."""
        return {"BRIDGE_ADMIN_TOKEN": self.token}


def bridge_config(
    tmp: Path,
    platform: PlatformEmulator,
    twilio: TwilioEmulator,
    *,
    port: int,
    token: str | None = TOKEN,
    db: Path | None = None,
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
        "BRIDGE_DB": str(db or tmp / "bridge.db"),
        "ELEVENLABS_BASE_URL": platform.http_url,
        "ELEVENLABS_API_KEY": platform.api_key,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_API_BASE_URL": twilio.http_url,
    }
    if token is not None:
        env["BRIDGE_ADMIN_TOKEN"] = token
    return load_config(toml, env=env)


@contextlib.asynccontextmanager
async def running_bridge(
    tmp: Path,
    platform: PlatformEmulator,
    twilio: TwilioEmulator,
    *,
    port: int | None = None,
    token: str | None = TOKEN,
) -> AsyncIterator[BridgeUnderTest]:
    port = port or free_port()
    config = bridge_config(tmp, platform, twilio, port=port, token=token)
    app = create_app(config)
    async with running_server(app, port=port) as server:
        yield BridgeUnderTest(server.http_url, token or "", app, config, port)


@pytest.fixture
async def bridge(
    tmp_path: Path, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> AsyncIterator[BridgeUnderTest]:
    """A bridge on loopback; NUMBER is on the Twilio account, pointing at OLD_VOICE_URL."""
    twilio_emulator.state.add_number(NUMBER, voice_url=OLD_VOICE_URL)
    async with running_bridge(tmp_path, platform_emulator, twilio_emulator) as b:
        yield b
