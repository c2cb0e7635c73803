"""Two bridge instances over one PostgreSQL store, watched from one instance's console.

Instance A answers the webhook, instance B relays the media stream (as in
tests/e2e/test_instances.py).  A's live view lists B's call with B's name in the
instance column, its hang-up button ends it through the bus, and A's system page lists
both instances with their state and live calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from bridge.emulator.twilio.script import CallScript
from tests.console.test_browser import chromium, shot
from tests.e2e.test_instances import (
    CALLER,
    NUMBER,
    admin,
    instance_config,
    new_agent,
    stream_to,
)
from tests.fixtures.bridge import BridgeUnderTest, eventually, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator


@pytest.fixture
async def pair(
    chromium_binary: Path,
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    postgres_dsn: str,
) -> AsyncIterator[tuple[BridgeUnderTest, BridgeUnderTest]]:
    twilio_emulator.state.add_number(NUMBER, voice_url="https://old.example.com/voice")
    cfg_a = instance_config(platform_emulator, twilio_emulator, postgres_dsn, "bridge-a")
    cfg_b = instance_config(platform_emulator, twilio_emulator, postgres_dsn, "bridge-b")
    async with (
        running_bridge(platform_emulator, cfg_a, twilio=twilio_emulator) as a,
        running_bridge(platform_emulator, cfg_b, twilio=twilio_emulator) as b,
    ):
        yield a, b


async def test_console_of_one_instance_shows_and_hangs_up_the_calls_of_another(
    chromium_binary: Path,
    tmp_path: Path,
    pair: tuple[BridgeUnderTest, BridgeUnderTest],
    twilio_emulator: TwilioEmulator,
) -> None:
    a, b = pair
    agent = await new_agent(a.url, "Front desk")
    r = await admin(a.url, "POST", "/numbers", {"number": NUMBER, "agent_id": agent})
    assert r.status_code == 201, r.text
    await eventually(lambda: b.app.state.routing.get(NUMBER) is not None)

    ui = f"{a.url}/admin/ui"
    async with chromium(chromium_binary, tmp_path) as ctx:
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{ui}/live")
        await page.fill("#token", a.token)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{ui}/live")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "open")

        # -- a call relayed by B shows in A's live view, with B as its instance
        stream_to(twilio_emulator, a.url, b.url)
        entry = await twilio_emulator.state.place_inbound(
            to=NUMBER, from_=CALLER, script=CallScript(max_duration_s=600.0), wait=False
        )
        sid = entry.call.call_sid
        await eventually(lambda: b.app.state.calls.get(sid) is not None)
        assert a.app.state.calls.get(sid) is None  # A answered the webhook only
        row = page.locator(f'#live-rows tr[data-sid="{sid}"]')
        # B's record of the stream start reaches the store through its writer.
        await expect(row.locator(".c-instance")).to_have_text("bridge-b", timeout=5000)
        await expect(row).to_contain_text(NUMBER)
        await expect(row).to_contain_text("Front desk")
        await expect(row.locator(".c-state")).to_contain_text("in progress")
        await shot(page, "live-two-instances")

        # -- A's system page lists both instances, B with its live call
        await page.goto(f"{ui}/system")
        inst = page.locator("#instances-table tbody tr")
        await expect(inst).to_have_count(2)
        row_a = page.locator('#instances-table tr[data-instance="bridge-a"]')
        row_b = page.locator('#instances-table tr[data-instance="bridge-b"]')
        await expect(row_a).to_contain_text("this one")
        await expect(row_a).to_contain_text("Running")
        await expect(row_b).to_contain_text("Running")
        # The live-call count is B's last heartbeat's: wait for the one after the call.
        for _ in range(100):
            if (await row_b.locator('td[data-label="Live calls"]').inner_text()).strip() == "1":
                break
            await asyncio.sleep(0.1)
            await page.reload()
        await expect(row_b.locator('td[data-label="Live calls"]')).to_have_text("1")
        await shot(page, "system-two-instances")

        # -- hang it up from A's page: B ends it, and it leaves A's live view
        await page.goto(f"{ui}/live")
        await row.get_by_role("button", name=f"Hang up the call to {NUMBER}").click()
        await page.click("#confirm-ok")
        await asyncio.wait_for(entry.call.finished.wait(), 10)
        await expect(page.locator("#notice")).to_contain_text(f"Hang-up sent to call {sid}")
        await expect(row).to_have_count(0, timeout=3000)
        await eventually(lambda: b.record(sid).end_reason == "admin_hangup")
        assert errors == [], errors
