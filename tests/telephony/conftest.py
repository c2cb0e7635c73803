"""End-to-end preset for the telephony features: Twilio emulator ⇄ bridge ⇄ platform emulator.

Unlike ``tests/e2e`` the bridge here holds Twilio REST credentials of the Twilio
emulator's account, so what it does over REST (place outbound calls, hang up) reaches
the emulator, and the emulator's calls (inbound ones it places, outbound ones it
answers) are signed with the same token the bridge checks.  The bridge is the one of
:mod:`tests.fixtures.bridge`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.fixtures.bridge import BridgeUnderTest, bridge_config, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

ADMIN_TOKEN = "telephony-admin-token-0123456789abcdef"  # >= 32 characters


@asynccontextmanager
async def running_phone(
    platform: PlatformEmulator,
    twilio: TwilioEmulator,
    *,
    calls: dict[str, Any] | None = None,
    **telephony: Any,
) -> AsyncIterator[BridgeUnderTest]:
    """A bridge wired to both emulators; ``telephony`` / ``calls`` replace config keys."""
    cfg = bridge_config(
        platform,
        twilio=twilio,
        sections={"telephony": telephony, "calls": calls},
        BRIDGE_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    async with running_bridge(platform, cfg, twilio=twilio) as phone:
        yield phone
