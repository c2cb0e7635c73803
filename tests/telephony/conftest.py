"""End-to-end harness for the telephony features: Twilio emulator ⇄ bridge ⇄ platform emulator.

Unlike ``tests/e2e`` the bridge here holds Twilio REST credentials of the Twilio
emulator's account, so what it does over REST (place outbound calls, hang up) reaches
the emulator, and the emulator's calls (inbound ones it places, outbound ones it
answers) are signed with the same token the bridge checks.  The bridge believes it is
reached at ``https://bridge.test``; the emulator maps that to the loopback port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.asgi import RunningServer, running_server
from bridge.config import load_config, with_overrides
from bridge.emulator.platform.records import ConversationRecord
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallScript
from bridge.emulator.twilio.webhook import UrlMap
from bridge.store import CallRecord, NumberRecord, Store
from bridge.telephony.features import Telephony
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

PUBLIC = "https://bridge.test"
ADMIN_TOKEN = "telephony-admin-token-0123456789abcdef"  # >= 32 characters
CALLER = "+14155550111"
SPEED = 4.0

_numbers = itertools.count(200)


@dataclass
class Phone:
    platform: PlatformEmulator
    twilio: TwilioEmulator
    server: RunningServer
    app: Starlette
    store: Store
    http: httpx.AsyncClient

    @property
    def telephony(self) -> Telephony:
        t: Telephony = self.app.state.telephony
        return t

    def number_for(self, agent_id: str, **fields: Any) -> str:
        """A fresh number of ours routed to ``agent_id`` (routing table + store)."""
        number = f"+1415555{next(_numbers):04d}"
        self.app.state.routing.apply(NumberRecord(number=number, agent_id=agent_id, **fields))
        return number

    async def call(
        self,
        agent_id: str,
        script: CallScript,
        *,
        to: str | None = None,
        speed: float = SPEED,
    ) -> CallResult:
        """An inbound call from CALLER to a number of ours, run to its end."""
        return await self.twilio.place_call(
            self.server.http_url,
            to=to or self.number_for(agent_id),
            from_=CALLER,
            script=script,
            speed=speed,
            public_url=PUBLIC,
            voice_path="/twilio/inbound",
            status_callback="/twilio/status",
        )

    async def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(
            method,
            "/admin" + path,
            json=body,
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    async def finished(self, call_sid: str, timeout_s: float = 20.0) -> CallResult:
        """The emulator's record of ``call_sid`` once the call is over."""
        deadline = time.monotonic() + timeout_s
        while True:
            entry = self.twilio.state.calls.get(call_sid)
            if entry is not None and entry.result.outcome is not None:
                # Status callbacks go out as the call ends; give them a moment to land.
                await self.settled(call_sid)
                return entry.result
            if time.monotonic() > deadline:
                raise TimeoutError(f"call {call_sid} still running after {timeout_s} s")
            await asyncio.sleep(0.02)

    async def settled(self, call_sid: str, timeout_s: float = 5.0) -> None:
        """Until the emulator's callbacks for the call have all been answered."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            entry = self.twilio.state.calls.get(call_sid)
            done = entry is not None and entry.result.outcome is not None
            cbs = entry.result.callbacks if entry is not None else []
            if done and any(c.event == "completed" or c.kind == "status" for c in cbs):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)

    def record(self, call_sid: str) -> CallRecord:
        assert self.store.flush()
        rec = self.store.get_call(call_sid)
        assert rec is not None, call_sid
        return rec

    def conversation(self, agent_id: str) -> ConversationRecord:
        (record,) = self.platform.conversations(agent_id)
        return record

    async def ended_conversation(self, agent_id: str) -> ConversationRecord:
        return await self.platform.wait_until_ended(self.conversation(agent_id).conversation_id)


@asynccontextmanager
async def running_phone(
    platform: PlatformEmulator,
    twilio: TwilioEmulator,
    *,
    calls: dict[str, Any] | None = None,
    **telephony: Any,
) -> AsyncIterator[Phone]:
    """A bridge wired to both emulators; ``telephony`` / ``calls`` replace config keys."""
    cfg = load_config(
        env={
            "BRIDGE_PUBLIC_URL": PUBLIC,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_API_BASE_URL": twilio.http_url,
            "ELEVENLABS_BASE_URL": platform.http_url,
            "ELEVENLABS_API_KEY": platform.api_key,
            "BRIDGE_DB": ":memory:",
            "BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
        }
    )
    cfg = with_overrides(
        cfg,
        telephony=dataclasses.replace(cfg.telephony, **telephony),
        calls=dataclasses.replace(cfg.calls, **(calls or {})),
    )
    store = Store(":memory:")
    app = create_app(cfg, store=store)
    try:
        async with (
            running_server(app) as server,
            httpx.AsyncClient(base_url=server.http_url, trust_env=False) as http,
        ):
            twilio.state.url_map = UrlMap({PUBLIC: server.http_url})
            yield Phone(platform, twilio, server, app, store, http)
    finally:
        store.close()
