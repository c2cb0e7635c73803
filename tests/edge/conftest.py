"""The bridge served through the edge (as ``bridge serve`` does), and raw HTTP clients.

Timeouts are short here so the tests stay fast; the limits are small so that attacks
are cheap to write.  A healthy synthetic call runs beside each attack.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk
from tests.e2e.conftest import heard_between, script_time, tone_snr_db, tone_ulaw
from tests.fixtures.bridge import BridgeUnderTest, bridge_config, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator

T = TypeVar("T")

EDGE = {
    "max_body_bytes": 4096,
    "max_form_fields": 50,
    "max_header_bytes": 4096,
    "max_headers": 20,
    "request_head_timeout_s": 0.5,
    "keepalive_timeout_s": 0.5,
    "upgrade_timeout_s": 0.5,
}

HEALTHY_SCRIPT = CallScript.of(
    Pause(0.3), Talk(tone_ulaw(1.2)), Pause(3.0), CallerHangsUp(), max_duration_s=30
)


@contextlib.asynccontextmanager
async def edge_bridge(platform: PlatformEmulator, **server: Any) -> AsyncIterator[BridgeUnderTest]:
    """The bridge app behind the edge; ``server`` replaces keys of EDGE / [server]."""
    cfg = bridge_config(
        platform, sections={"platform": {"sync_interval_s": 0}, "server": {**EDGE, **server}}
    )
    async with running_bridge(platform, cfg, edge=True, settle_sync=True) as bridge:
        yield bridge


def loopback_agent(platform: PlatformEmulator) -> str:
    return platform.create_agent(
        behaviour={"mode": "loopback", "greeting": False}, input_format="pcm_16000"
    )


async def beside_a_call(e2e: BridgeUnderTest, attack: Awaitable[T], *, speed: float = 4.0) -> T:
    """Run ``attack`` while a healthy call is under way; the call must come through."""
    agent = loopback_agent(e2e.platform)
    call = asyncio.create_task(e2e.call(agent, HEALTHY_SCRIPT, speed=speed))
    await asyncio.sleep(0.2)
    try:
        result = await attack
    finally:
        res = await call
    assert_healthy(e2e, res)
    return result


def assert_healthy(e2e: BridgeUnderTest, res: CallResult) -> None:
    assert res.outcome is Outcome.COMPLETED, res.reason
    heard = heard_between(res, script_time(res, "talk-start"))
    assert len(heard) >= 8000 * 1.0
    assert tone_snr_db(heard) >= 30.0
    assert e2e.call_record_reason(res.call_sid) == "caller_hangup"


# --------------------------------------------------------------------------- raw clients


@dataclasses.dataclass
class Answer:
    """What came back on a raw connection before it closed (or the wait ended)."""

    data: bytes
    closed: bool

    @property
    def status(self) -> int | None:
        if not self.data.startswith(b"HTTP/1."):
            return None
        return int(self.data.split(b" ", 2)[1])

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]


async def read_until_closed(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> Answer:
    data = b""
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        return Answer(data, closed=False)
    except ConnectionError:
        pass
    return Answer(data, closed=True)


@contextlib.asynccontextmanager
async def raw(
    e2e: BridgeUnderTest,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", e2e.server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def send_and_read(e2e: BridgeUnderTest, data: bytes, timeout_s: float = 5.0) -> Answer:
    async with raw(e2e) as (reader, writer):
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await read_until_closed(reader, timeout_s)
