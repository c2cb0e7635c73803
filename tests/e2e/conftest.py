"""End to end: the synthetic caller → the bridge → the platform emulator, all on loopback.

The bridge believes it is reached at ``https://bridge.test`` (as behind a TLS proxy);
the caller maps that to the loopback port, and signs everything with the test token
over the public URL, as Twilio does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.asgi import DIRECT_WS, RunningServer, running_server
from bridge.audio import signals
from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.call.tools import CallControl
from bridge.config import Config, load_config, with_overrides
from bridge.emulator.platform.records import ConversationRecord
from bridge.emulator.twilio.caller import DEFAULT_ACCOUNT_SID, place_call
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallScript
from bridge.store import NumberRecord, Store
from bridge.twilio import stream_token
from tests.fixtures.platform_emulator import PlatformEmulator

PUBLIC = "https://bridge.test"
TOKEN = "e2e-auth-token"
ACCOUNT_SID = DEFAULT_ACCOUNT_SID  # the emulator's Twilio account, and hand-written starts
CALLER = "+14155550111"
SPEED = 4.0  # call time runs 4x faster than the wall clock
TONE_HZ = 440.0

_numbers = itertools.count(100)


def tone_ulaw(seconds: float, freq_hz: float = TONE_HZ, dbfs: float = -12.0) -> bytes:
    return ulaw_encode(signals.to_pcm16(signals.tone(freq_hz, seconds, 8000, dbfs)))


def tone_snr_db(ulaw: bytes, freq_hz: float = TONE_HZ) -> float:
    """SNR of the tone in the loud middle of ``ulaw`` (leading/trailing quiet trimmed)."""
    x = signals.from_pcm16(ulaw_decode(ulaw))
    loud = np.flatnonzero(np.abs(x) > 0.1 * np.max(np.abs(x)))
    assert loud.size > 800, "no tone to measure"
    a, b = int(loud[0]), int(loud[-1])
    margin = (b - a) // 10  # skip the edges: on- and off-set of the tone
    return signals.tone_snr_db(x[a + margin : b - margin], 8000, freq_hz)


def heard_between(res: CallResult, start: float, end: float = float("inf")) -> bytes:
    """What the caller heard of audio that began playing in [start, end) (call time)."""
    stream = res.stream
    assert stream is not None
    return b"".join(s.data for s in stream.heard if start <= s.start < end)


def script_time(res: CallResult, kind: str) -> float:
    return next(e.t for e in res.script_events if e.kind == kind)


class CallStarted:
    """A per-call watcher (the services' ``watch`` hook) that notes when calls start."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __call__(self, call: CallControl) -> CallStarted:
        self.event.set()
        return self

    def caller_audio(self, payload_b64: str) -> None:
        pass

    def ended(self) -> None:
        pass


@dataclass
class E2E:
    platform: PlatformEmulator
    server: RunningServer
    app: Starlette
    store: Store

    def number_for(self, agent_id: str, **overrides: Any) -> str:
        """A fresh number of ours, routed to ``agent_id`` (through the routing table)."""
        number = f"+1415555{next(_numbers):04d}"
        self.app.state.routing.apply(NumberRecord(number=number, agent_id=agent_id, **overrides))
        return number

    async def call(
        self,
        agent_id: str,
        script: CallScript,
        *,
        to: str | None = None,
        auth_token: str | None = TOKEN,
        speed: float = SPEED,
    ) -> CallResult:
        return await place_call(
            self.server.http_url,
            to=to or self.number_for(agent_id),
            from_=CALLER,
            script=script,
            auth_token=auth_token,
            speed=speed,
            voice_path="/twilio/inbound",
            public_url=PUBLIC,
            status_callback="/twilio/status",
            account_sid=account_sid_of(self.app),
        )

    def conversation(self, agent_id: str) -> ConversationRecord:
        (record,) = self.platform.conversations(agent_id)
        return record

    def call_record_reason(self, call_sid: str) -> str | None:
        assert self.store.flush()
        rec = self.store.get_call(call_sid)
        assert rec is not None
        return rec.end_reason


def account_sid_of(app: Starlette) -> str:
    """The account the bridge's Twilio calls come from: the configured one, if any."""
    configured: str | None = app.state.config.twilio.account_sid
    return configured or ACCOUNT_SID


def with_token(
    app: Starlette,
    call_sid: str,
    params: dict[str, str],
    *,
    account_sid: str | None = None,
    ttl_s: float = 300.0,
) -> dict[str, str]:
    """``params`` plus the stream token the webhook would have written for this call."""
    return stream_token.signed_parameters(
        app.state.config.twilio.stream_key,
        params,
        call_sid=call_sid,
        account_sid=account_sid or account_sid_of(app),
        now=time.time(),
        ttl_s=ttl_s,
    )


def bridge_config(platform: PlatformEmulator, **env: str) -> Config:
    return load_config(
        env={
            "BRIDGE_PUBLIC_URL": PUBLIC,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "ELEVENLABS_BASE_URL": platform.http_url,
            "BRIDGE_DB": ":memory:",
            **env,
        }
    )


async def running_bridge(
    platform: PlatformEmulator,
    *,
    calls: dict[str, Any] | None = None,
    ws: str = DIRECT_WS,
    **env: str,
) -> AsyncIterator[E2E]:
    """A bridge against ``platform``; ``calls`` replaces keys of the [calls] config."""
    cfg = bridge_config(platform, **env)
    if calls:
        cfg = with_overrides(cfg, calls=dataclasses.replace(cfg.calls, **calls))
    store = Store(":memory:")
    app = create_app(cfg, store=store)
    try:
        async with running_server(app, ws=ws) as server:
            yield E2E(platform, server, app, store)
    finally:
        store.close()


@pytest.fixture
async def e2e(platform_emulator: PlatformEmulator) -> AsyncIterator[E2E]:
    async for harness in running_bridge(platform_emulator):
        yield harness
