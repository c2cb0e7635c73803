"""The admin API's door over real loopback HTTP: failed tokens are throttled per client
address (429 before the token is checked) and counted; only HTTP gets in.

Client addresses are real: Linux answers on all of 127.0.0.0/8, so a client bound to
127.0.0.2 is another address to the bridge.  A healthy call runs beside each attack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk
from tests.e2e.conftest import heard_between, script_time, tone_snr_db, tone_ulaw
from tests.fixtures.bridge import BridgeUnderTest, bridge_config, metric, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator

T = TypeVar("T")

TOKEN = "admin-auth-test-token-0123456789abcdef"
PER_MINUTE = 3
HEALTHY = CallScript.of(
    Pause(0.3), Talk(tone_ulaw(1.2)), Pause(2.0), CallerHangsUp(), max_duration_s=30
)


@contextlib.asynccontextmanager
async def throttled_bridge(platform: PlatformEmulator) -> AsyncIterator[BridgeUnderTest]:
    """A bridge whose admin auth throttle allows PER_MINUTE failures a minute."""
    cfg = bridge_config(
        platform,
        sections={
            "admin": {"auth_failures_per_minute": PER_MINUTE},
            "platform": {"sync_interval_s": 0},
        },
        BRIDGE_ADMIN_TOKEN=TOKEN,
    )
    async with running_bridge(platform, cfg) as bridge:
        yield bridge


def client(
    e2e: BridgeUnderTest, token: str | None, address: str = "127.0.0.1"
) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=e2e.server.http_url,
        headers=headers,
        transport=httpx.AsyncHTTPTransport(local_address=address),
        trust_env=False,
    )


async def beside_a_call(e2e: BridgeUnderTest, attack: Awaitable[T]) -> T:
    """Run ``attack`` while a healthy call is under way; the call must come through."""
    agent = e2e.platform.create_agent(
        behaviour={"mode": "loopback", "greeting": False}, input_format="pcm_16000"
    )
    call = asyncio.create_task(e2e.call(agent, HEALTHY, speed=4.0))
    await asyncio.sleep(0.2)
    try:
        result = await attack
    finally:
        res = await call
    assert res.outcome is Outcome.COMPLETED, res.reason
    heard = heard_between(res, script_time(res, "talk-start"))
    assert len(heard) >= 8000 * 1.0
    assert tone_snr_db(heard) >= 30.0
    assert e2e.call_record_reason(res.call_sid) == "caller_hangup"
    return result


async def test_failed_tokens_are_throttled_per_address_and_counted(
    platform_emulator: PlatformEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.admin")
    async with throttled_bridge(platform_emulator) as e2e:

        async def attack() -> list[httpx.Response]:
            async with client(e2e, "wrong-token-" + "x" * 30) as bad:
                return [await bad.get("/admin/numbers") for _ in range(PER_MINUTE + 3)]

        answers = await beside_a_call(e2e, attack())
        assert [r.status_code for r in answers] == [401] * PER_MINUTE + [429] * 3
        refused = answers[-1]
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"]["field"] == "authorization"
        assert "too many failed" in refused.json()["error"]["message"]
        retry = int(refused.headers["retry-after"])
        assert 1 <= retry <= 60 // PER_MINUTE
        # Refused before the token is looked at: the right token from there waits too.
        async with client(e2e, TOKEN) as same_address:
            assert (await same_address.get("/admin/numbers")).status_code == 429
        # Another address is not affected, with the right token or a wrong one.
        async with client(e2e, TOKEN, "127.0.0.2") as other:
            r = await other.get("/admin/numbers")
            assert r.status_code == 200 and "items" in r.json()
        async with client(e2e, None, "127.0.0.3") as other_bad:
            assert (await other_bad.get("/admin/numbers")).status_code == 401
        assert metric(e2e.app, "bridge_admin_auth_failures_total") == PER_MINUTE + 1
        assert metric(e2e.app, "bridge_admin_auth_throttled_total") == 4
    unauthorized = [r for r in caplog.records if r.getMessage() == "admin.unauthorized"]
    assert len(unauthorized) == PER_MINUTE + 1  # one line per failure, none per refusal
    assert not any(TOKEN in r.getMessage() + str(r.__dict__) for r in caplog.records)


async def test_a_good_token_costs_nothing(platform_emulator: PlatformEmulator) -> None:
    async with throttled_bridge(platform_emulator) as e2e, client(e2e, TOKEN) as good:
        for _ in range(PER_MINUTE * 4):
            assert (await good.get("/admin/numbers")).status_code == 200
        assert metric(e2e.app, "bridge_admin_auth_failures_total") == 0
        assert metric(e2e.app, "bridge_admin_auth_throttled_total") == 0


async def test_websocket_under_admin_is_refused(
    platform_emulator: PlatformEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.admin")
    async with throttled_bridge(platform_emulator) as e2e:
        url = e2e.server.ws_url

        async def attack() -> list[int]:
            codes = []
            for path, headers in (
                ("/admin/numbers", {}),
                ("/admin/calls", {"Authorization": f"Bearer {TOKEN}"}),  # even with the token
                ("/admin/", {"Authorization": f"Bearer {TOKEN}"}),
            ):
                with pytest.raises(InvalidStatus) as ei:
                    async with connect(url + path, additional_headers=headers, open_timeout=5):
                        pass
                codes.append(ei.value.response.status_code)
            return codes

        assert await beside_a_call(e2e, attack()) == [403, 403, 403]
    refused = [r for r in caplog.records if r.getMessage() == "admin.refused_scope"]
    assert len(refused) == 3
