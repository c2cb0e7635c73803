"""The console over HTTP (no browser): mounting, sign-in, cookies, CSRF, refusals, headers."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bridge.app import create_app
from bridge.asgi import running_server
from bridge.config import load_config
from tests.admin.stack import BridgeUnderTest
from tests.fixtures.platform_emulator import PlatformEmulator

UI = "/admin/ui"
TOKEN = "console-route-token-0123456789-abcdefghij"


async def signed_in(c: httpx.AsyncClient, token: str) -> str:
    """Sign ``c`` in; the CSRF token of its session (read from a page, as a browser does)."""
    r = await c.post(f"{UI}/sign-in", data={"token": token, "next": f"{UI}/numbers"})
    assert r.status_code == 303 and r.headers["location"] == f"{UI}/numbers", r.text
    page = await c.get(f"{UI}/numbers")
    assert page.status_code == 200
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m is not None
    return m.group(1)


@pytest.fixture
async def https_bridge(
    tmp_path: Path, platform_emulator: PlatformEmulator
) -> AsyncIterator[httpx.AsyncClient]:
    """A bridge that believes it is reached over https, with a tight sign-in throttle."""
    toml = tmp_path / "bridge.toml"
    toml.write_text("[admin]\nauth_failures_per_minute = 2\n", encoding="utf-8")
    cfg = load_config(
        toml,
        env={
            "BRIDGE_PUBLIC_URL": "https://bridge.test",
            "BRIDGE_ADMIN_TOKEN": TOKEN,
            "TWILIO_AUTH_TOKEN": "route-test-twilio-token",
            "ELEVENLABS_BASE_URL": platform_emulator.http_url,
            "BRIDGE_DB": ":memory:",
        },
    )
    async with (
        running_server(create_app(cfg)) as server,
        httpx.AsyncClient(base_url=server.http_url) as c,
    ):
        yield c


async def test_no_console_without_an_admin_token(platform_emulator: PlatformEmulator) -> None:
    cfg = load_config(
        env={"ELEVENLABS_BASE_URL": platform_emulator.http_url, "BRIDGE_DB": ":memory:"}
    )
    async with (
        running_server(create_app(cfg)) as server,
        httpx.AsyncClient(base_url=server.http_url) as c,
    ):
        for path in (UI, f"{UI}/", f"{UI}/sign-in", f"{UI}/static/console.css"):
            assert (await c.get(path)).status_code == 404, path


async def test_pages_ask_to_sign_in_and_come_back(console_bridge: BridgeUnderTest) -> None:
    async with httpx.AsyncClient(base_url=console_bridge.url) as c:
        r = await c.get(UI)
        assert r.status_code == 303 and r.headers["location"] == f"{UI}/live"
        for page in ("live", "calls", "numbers", "agents", "system", "calls/CA1"):
            r = await c.get(f"{UI}/{page}")
            assert r.status_code == 303, page
            assert r.headers["location"] == f"{UI}/sign-in?next={UI}/{page}"
        r = await c.get(f"{UI}/sign-in")
        assert r.status_code == 200 and 'type="password"' in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        css = await c.get(f"{UI}/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_sign_in_cookie_and_no_token_anywhere(
    console_bridge: BridgeUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    token = console_bridge.token
    bodies: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(base_url=console_bridge.url) as c:
            bad = await c.post(f"{UI}/sign-in", data={"token": token + "x"})
            assert bad.status_code == 401 and "is not this bridge" in bad.text
            assert "set-cookie" not in bad.headers
            bodies.append(bad.text)
            r = await c.post(f"{UI}/sign-in", data={"token": token, "next": "https://evil.test/"})
            assert r.status_code == 303 and r.headers["location"] == f"{UI}/live"
            cookie = r.headers["set-cookie"]
            attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
            assert {"httponly", "max-age", "path", "samesite"} <= attrs
            assert "samesite=strict" in cookie.lower() and "path=/admin/ui" in cookie.lower()
            assert "secure" not in attrs  # the public URL is http here
            for page in ("live", "calls", "numbers", "agents", "system"):
                r = await c.get(f"{UI}/{page}")
                assert r.status_code == 200, page
                bodies.append(r.text)
    assert all(token not in b for b in bodies)
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "console.signed_in" in logged and "console.sign_in_failed" in logged
    assert token not in logged and token[:20] not in logged


async def test_https_bridge_sets_a_secure_cookie_and_throttles_sign_in(
    https_bridge: httpx.AsyncClient,
) -> None:
    c = https_bridge
    r = await c.post(f"{UI}/sign-in", data={"token": TOKEN})
    assert r.status_code == 303
    assert "secure" in {a.strip().lower() for a in r.headers["set-cookie"].split(";")}
    c.cookies.clear()
    for _ in range(2):
        assert (await c.post(f"{UI}/sign-in", data={"token": "wrong"})).status_code == 401
    throttled = await c.post(f"{UI}/sign-in", data={"token": TOKEN})  # even the right one
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    assert "Too many failed sign-ins" in throttled.text and "set-cookie" not in throttled.headers


async def test_state_changes_need_the_cookie_and_the_csrf_token(
    console_bridge: BridgeUnderTest,
) -> None:
    b = console_bridge
    async with httpx.AsyncClient(base_url=b.url) as c:
        r = await c.post(f"{UI}/agents", data={"name": "X", "prompt": "Y", "csrf": "z"})
        assert r.status_code == 401
        csrf = await signed_in(c, b.token)
        for path, data in (
            (f"{UI}/agents", {"name": "X", "prompt": "Y"}),
            (f"{UI}/calls/CA1/hangup", {}),
            (f"{UI}/sign-out", {}),
        ):
            # (the altered token's last character always differs from the real one's)
            altered = csrf[:-1] + ("B" if csrf.endswith("A") else "A")
            for wrong in ({}, {"csrf": ""}, {"csrf": altered}):
                r = await c.post(path, data={**data, **wrong})
                assert r.status_code == 403, (path, wrong)
        async with b.client() as api:
            names = [a["name"] for a in (await api.get("/admin/agents")).json()["items"]]
            assert "X" not in names  # nothing was created
        too_big = await c.post(f"{UI}/agents", data={"csrf": csrf, "prompt": "x" * 70_000})
        assert too_big.status_code == 413
        r = await c.post(f"{UI}/agents", data={"csrf": csrf, "name": "Desk", "prompt": "Hi"})
        assert r.status_code == 303 and "notice=agent_created" in r.headers["location"]
        r = await c.post(f"{UI}/sign-out", data={"csrf": csrf})
        assert r.status_code == 303
        assert (await c.get(f"{UI}/live")).status_code == 303  # signed out


async def test_signed_out_cookie_is_dead_even_if_kept(console_bridge: BridgeUnderTest) -> None:
    async with httpx.AsyncClient(base_url=console_bridge.url) as c:
        csrf = await signed_in(c, console_bridge.token)
        kept = dict(c.cookies)
        await c.post(f"{UI}/sign-out", data={"csrf": csrf})
        c.cookies.clear()
        c.cookies.update(kept)
        assert (await c.get(f"{UI}/live")).status_code == 303


async def test_errors_render_as_pages(console_bridge: BridgeUnderTest) -> None:
    async with httpx.AsyncClient(base_url=console_bridge.url) as c:
        csrf = await signed_in(c, console_bridge.token)
        r = await c.get(f"{UI}/calls", params={"number": "12", "since": "soon"})
        assert r.status_code == 400 and 'id="q-number-error"' in r.text
        r = await c.get(f"{UI}/calls/CAnope")
        assert r.status_code == 404 and "No such call" in r.text
        raw = await c.get(f"{UI}/calls/CAnope/raw")
        assert raw.status_code == 404 and raw.json()["error"]["field"] == "call_sid"
        r = await c.post(f"{UI}/calls/CAnope/hangup", data={"csrf": csrf})
        assert r.status_code == 404 and "no call" in r.text
        r = await c.post(f"{UI}/numbers/+15550009999/agent", data={"csrf": csrf, "agent_id": ""})
        assert r.status_code == 404


async def test_live_events_stream_a_snapshot(console_bridge: BridgeUnderTest) -> None:
    async with httpx.AsyncClient(base_url=console_bridge.url) as c:
        assert (await c.get(f"{UI}/live/events")).status_code == 401
        await signed_in(c, console_bridge.token)
        async with c.stream("GET", f"{UI}/live/events") as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            seen = b""
            async for chunk in r.aiter_bytes():
                seen += chunk
                if b"event: calls" in seen and seen.endswith(b"\n\n"):
                    break
        assert b'"calls":[]' in seen


async def test_system_page_shows_the_insecure_configuration_warnings(
    platform_emulator: PlatformEmulator,
) -> None:
    cfg = load_config(  # loopback only and no Twilio auth token: allowed, with a warning
        env={
            "BRIDGE_ADMIN_TOKEN": TOKEN,
            "ELEVENLABS_BASE_URL": platform_emulator.http_url,
            "BRIDGE_DB": ":memory:",
        }
    )
    async with (
        running_server(create_app(cfg)) as server,
        httpx.AsyncClient(base_url=server.http_url) as c,
    ):
        await signed_in(c, TOKEN)
        page = await c.get(f"{UI}/system")
        assert page.status_code == 200
        assert 'id="security-warnings"' in page.text and "twilio_signatures" in page.text
        assert TOKEN not in page.text and "set (hidden)" in page.text
