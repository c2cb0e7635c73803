"""The console in a real browser (headless Chromium), against a running bridge.

One walk through the console as an operator would do it, with both emulators on
loopback: sign in → create agents → import a number with an agent (bad input first) →
a call to it appears in the live view within a second, reaches that agent, and leaves
the view when it ends → re-assign → the next calls reach the new agent → hang one up
from the page (the caller's stream ends) → open it in the history and read how it
ended → the refusals (no cookie, wrong CSRF token) → sign out.  A screenshot of every
page goes to ``artifacts/console/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from bridge.emulator.twilio.script import CallScript
from bridge.emulator.twilio.state import CallEntry
from tests.admin.stack import NUMBER, BridgeUnderTest
from tests.console.conftest import CHROMIUM_ARGS, ROOT, artifacts_dir
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

CALLERS = ("+15550002222", "+15550003333", "+15550004444")
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@contextlib.asynccontextmanager
async def chromium(binary: Path, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    profile = tmp_path / "chromium-profile"  # a fresh user-data dir per test
    async with async_playwright() as p:
        ctx = await p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(binary),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=DESKTOP,  # type: ignore[arg-type]
        )
        try:
            yield ctx
        finally:
            await ctx.close()


async def shot(page: Page, name: str, *, readme: str | None = None) -> Path:
    path = artifacts_dir() / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    if readme is not None and os.environ.get("BRIDGE_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, ROOT / "docs" / "img" / readme)
    return path


async def registered(bridge: BridgeUnderTest, sid: str, timeout_s: float = 5.0) -> float:
    """When the bridge registered the call's stream as live (monotonic)."""
    deadline = time.monotonic() + timeout_s
    while bridge.app.state.calls.get(sid) is None:
        assert time.monotonic() < deadline, f"call {sid} never went live on the bridge"
        await asyncio.sleep(0.005)
    return time.monotonic()


async def record_of(bridge: BridgeUnderTest, sid: str) -> dict[str, object]:
    async with bridge.client() as c:
        for _ in range(300):
            r = await c.get(f"/admin/calls/{sid}")
            if r.status_code == 200 and r.json()["end_reason"]:
                rec: dict[str, object] = r.json()
                return rec
            await asyncio.sleep(0.01)
    raise AssertionError(f"call {sid} never finished in the records")


async def create_agent(page: Page, ui: str, name: str) -> str:
    await page.goto(f"{ui}/agents")
    await page.fill("#f-name", name)
    await page.fill("#f-prompt", "You answer the phone for the front desk. Be brief.")
    await page.click("text=Create agent")
    await expect(page.locator("#notice")).to_contain_text(f"Agent {name} created")
    row = page.locator("#agents-table tr", has_text=name)
    return (await row.locator("code").inner_text()).strip()


async def test_operator_console_in_a_real_browser(
    chromium_binary: Path,
    tmp_path: Path,
    console_bridge: BridgeUnderTest,
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
) -> None:
    b = console_bridge
    ui = f"{b.url}/admin/ui"
    tw = twilio_emulator.state
    async with chromium(chromium_binary, tmp_path) as ctx:
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # -- sign in: a page asks for it first; a wrong token is refused next to the field
        await page.goto(f"{ui}/live")
        assert page.url.startswith(f"{ui}/sign-in?next=")
        await page.fill("#token", "not-the-token")
        await page.click("button[type=submit]")
        await expect(page.locator("#token-error")).to_have_text(
            "That is not this bridge's admin token."
        )
        assert await page.locator("#token").input_value() == ""  # never echoed back
        await shot(page, "sign-in")
        await page.fill("#token", b.token)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{ui}/live")
        (cookie,) = await ctx.cookies()
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert cookie["expires"] > time.time() + 3600  # a session cookie that expires
        assert b.token not in cookie["value"]

        # -- agents: bad input shows the API's error next to the field
        await page.goto(f"{ui}/agents")
        await page.fill("#f-name", "Reception")
        await page.fill("#f-prompt", "   ")
        await page.click("text=Create agent")
        await expect(page.locator("#f-prompt-error")).to_contain_text("must not be blank")
        first = await create_agent(page, ui, "Reception")
        second = await create_agent(page, ui, "Billing")
        await shot(page, "agents")

        # -- import a number: a malformed one is refused next to the field, then the real one
        await page.goto(f"{ui}/numbers")
        await page.fill("#f-number", "+1 415 555")
        await page.click("text=Import number")
        await expect(page.locator("#f-number-error")).to_contain_text("E.164 number")
        await expect(page.locator("#f-number")).to_have_attribute("aria-invalid", "true")
        await shot(page, "numbers-field-error")
        await page.fill("#f-number", NUMBER)
        await page.select_option("#f-agent_id", first)
        await page.click("text=Import number")
        await expect(page.locator("#notice")).to_contain_text(f"Number {NUMBER} imported")
        found = tw.find_number(NUMBER)
        assert found is not None and found.voice_url == f"{b.url}/twilio/inbound"

        # -- a call appears in the live view within a second, reaches the agent, then leaves
        await page.goto(f"{ui}/live")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        await expect(page.locator("#live-empty")).to_be_visible()
        await shot(page, "live-empty")
        entry = await tw.place_inbound(
            to=NUMBER, from_=CALLERS[0], script=CallScript(hangup_at=25.0), wait=False
        )
        sid = entry.call.call_sid
        went_live = await registered(b, sid)
        row = page.locator(f'#live-rows tr[data-sid="{sid}"]')
        await expect(row).to_be_visible(timeout=1000)
        shown_after = time.monotonic() - went_live
        await expect(row).to_contain_text(NUMBER)
        await expect(row).to_contain_text(CALLERS[0][-4:])  # masked but for 4 digits
        assert CALLERS[0] not in await row.inner_text()
        await expect(row).to_contain_text("Reception")  # the agent, by name
        # relayed here, an agent with no greeting and a silent caller: no audio relayed
        # yet (no p99 to show), no turn measured (test_browser_call has both)
        await expect(row.locator(".c-p99")).to_have_text("—")
        await expect(row.locator(".c-turns")).to_have_text("0")
        await asyncio.wait_for(entry.call.finished.wait(), 15)
        await expect(row).to_have_count(0, timeout=2000)
        assert [c.agent_id for c in platform_emulator.conversations()] == [first]
        print(f"live row shown {shown_after * 1000:.0f} ms after the stream went live")

        # -- re-assign the number; the next calls reach the new agent
        await page.goto(f"{ui}/numbers")
        number_row = page.locator(f'#numbers-table tr[data-number="{NUMBER}"]')
        await number_row.locator("select").select_option(second)
        await number_row.get_by_role("button", name="Assign").click()
        await expect(page.locator("#notice")).to_contain_text(f"Number {NUMBER} updated")
        await shot(page, "numbers")

        await page.goto(f"{ui}/live")
        entries: list[CallEntry] = []
        for caller in CALLERS:
            entries.append(
                await tw.place_inbound(
                    to=NUMBER, from_=caller, script=CallScript(max_duration_s=120), wait=False
                )
            )
        for e in entries:
            await registered(b, e.call.call_sid)
            await expect(page.locator(f'tr[data-sid="{e.call.call_sid}"]')).to_be_visible()
        await expect(page.locator("#live-rows tr").first).not_to_contain_text("connecting")
        # The durations count up by themselves (no new event needed): wait for 0:02.
        await expect(page.locator("#live-rows tr .dur").first).to_have_text("0:02", timeout=4000)
        await shot(page, "live", readme="console-live.png")
        await page.set_viewport_size(PHONE)  # type: ignore[arg-type]
        await shot(page, "live-phone")
        await page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
        agents = [c.agent_id for c in platform_emulator.conversations()]
        assert agents == [first, second, second, second]

        # -- hang up one from the page, with confirmation: the caller's stream ends
        victim = entries[0]
        vsid = victim.call.call_sid
        vrow = page.locator(f'tr[data-sid="{vsid}"]')
        await vrow.get_by_role("button", name=f"Hang up the call to {NUMBER}").click()
        dialog = page.locator("dialog#confirm")
        await expect(dialog).to_be_visible()
        await shot(page, "live-hangup-confirm")
        await page.click("#confirm-ok")
        await asyncio.wait_for(victim.call.finished.wait(), 5)
        assert victim.result.status == "completed"
        await expect(page.locator("#notice")).to_contain_text(f"Hang-up sent to call {vsid}")
        await expect(vrow).to_have_count(0, timeout=2000)
        assert (await record_of(b, vsid))["end_reason"] == "admin_hangup"
        for e in entries[1:]:
            assert not e.call.finished.is_set()  # the others are still on the line
            e.call.hang_up(by="caller")
            await asyncio.wait_for(e.call.finished.wait(), 5)
            await record_of(b, e.call.call_sid)

        # -- the history lists them; the hung-up call's detail says how it ended
        await page.goto(f"{ui}/calls")
        await expect(page.locator("#total-calls")).to_have_text("4")
        await shot(page, "history")
        await page.goto(f"{ui}/calls?outcome=admin_hangup")
        await expect(page.locator("#total-calls")).to_have_text("1")
        await page.locator(".rowlink").click()
        await page.wait_for_url(f"{ui}/calls/{vsid}")
        await expect(page.locator("#end-reason")).to_have_text(
            "An operator hung up the call (admin API or console)."
        )
        await expect(page.locator("#timeline")).to_contain_text("Media stream connected")
        # Recording is off here: the page says how to turn it on.
        await expect(page.locator("#not-recorded")).to_contain_text("BRIDGE_RECORDING=true")
        await expect(page.locator("#recording audio")).to_have_count(0)
        await expect(page.locator("#transcript-lines li").last).to_contain_text(
            "An operator hung up the call"
        )
        await shot(page, "call-detail")  # (the README's is test_browser_call.py's)
        raw = await ctx.request.get(f"{ui}/calls/{vsid}/raw")
        assert raw.ok and json.loads(await raw.text())["call_sid"] == vsid

        await page.goto(f"{ui}/system")
        await expect(page.locator("#readiness")).to_have_text("Ready")
        await expect(page.locator("#config-table")).to_contain_text("set (hidden)")
        assert b.token not in await page.content()
        await shot(page, "system")

        # -- refusals: a wrong CSRF token (with the cookie), and no cookie at all
        refused = await ctx.request.post(
            f"{ui}/numbers/{NUMBER}/delete", form={"csrf": "forged"}, max_redirects=0
        )
        assert refused.status == 403
        async with httpx.AsyncClient(base_url=b.url) as anonymous:
            r = await anonymous.post(f"/admin/ui/numbers/{NUMBER}/delete", data={"csrf": "x"})
            assert r.status_code == 401
        assert b.app.state.routing.get(NUMBER) is not None  # nothing was deleted

        # -- every page fits a phone's width (no sideways scrolling)
        await page.set_viewport_size(PHONE)  # type: ignore[arg-type]
        for name in ("live", "calls", "numbers", "agents", "system", f"calls/{vsid}"):
            await page.goto(f"{ui}/{name}")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name} scrolls sideways on a phone ({width} px)"
            await shot(page, "phone-call-detail" if "/" in name else f"phone-{name}")
        await page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]

        # -- keyboard: the skip link is the first stop and leads to the content
        await page.goto(f"{ui}/numbers")
        await page.keyboard.press("Tab")
        await expect(page.locator("a.skip")).to_be_focused()

        assert errors == [], errors  # no script error on any page

        # -- sign out: the session is gone, pages ask to sign in again
        await page.click("text=Sign out")
        await page.wait_for_url(f"{ui}/sign-in?notice=signed_out")
        await page.goto(f"{ui}/live")
        assert page.url.startswith(f"{ui}/sign-in")


@pytest.mark.parametrize("size", [PHONE], ids=["phone"])
async def test_sign_in_page_fits_a_phone(
    chromium_binary: Path, tmp_path: Path, console_bridge: BridgeUnderTest, size: dict[str, int]
) -> None:
    async with chromium(chromium_binary, tmp_path) as ctx:
        page = await ctx.new_page()
        await page.set_viewport_size(size)  # type: ignore[arg-type]
        await page.goto(f"{console_bridge.url}/admin/ui/sign-in")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= size["width"], "the page scrolls sideways on a phone"
        await expect(page.get_by_label("Admin token")).to_be_visible()
        await shot(page, "sign-in-phone")
