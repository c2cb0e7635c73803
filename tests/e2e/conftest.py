"""End to end: the synthetic caller → the bridge → the platform emulator, all on loopback.

The bridge (:mod:`tests.fixtures.bridge`) believes it is reached at ``https://bridge.test``
(as behind a TLS proxy); the caller maps that to the loopback port, and signs everything
with the test token over the public URL, as Twilio does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from starlette.applications import Starlette

from bridge.audio import signals
from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.call.tools import CallControl
from bridge.emulator.twilio.records import CallResult
from bridge.twilio import stream_token
from tests.fixtures.bridge import BridgeUnderTest, account_sid_of, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator

TONE_HZ = 440.0


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


@pytest.fixture
async def e2e(platform_emulator: PlatformEmulator) -> AsyncIterator[BridgeUnderTest]:
    async with running_bridge(platform_emulator) as bridge:
        yield bridge
