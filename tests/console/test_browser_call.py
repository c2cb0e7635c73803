"""A finished call's detail page in a real browser: transcript, latency chart, recording.

A recording bridge (``[recording] enabled``) with both emulators' sides: the synthetic
caller talks twice to an echo agent, which answers each time, then hangs up.  The page
shows what was said, one latency bar per agent turn (with the table alternative), and
an audio player whose file loads through the console's cookie-guarded route and reports
the call's stream duration.  The screenshot is the README's call-detail image.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from playwright.async_api import expect

from bridge.call.driver import CallDriver
from bridge.console.live import live_rows
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk, WaitForAgent
from bridge.store.transcripts import AgentTurn
from tests.console.test_browser import DESKTOP, PHONE, chromium, shot
from tests.e2e.conftest import tone_ulaw
from tests.fixtures.bridge import eventually
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.recording.conftest import finalised, recording_bridge

ADMIN_TOKEN = "console-recording-token-0123456789abcdef"


async def test_call_detail_shows_transcript_latency_and_a_seekable_recording(
    chromium_binary: Path, tmp_path: Path, platform_emulator: PlatformEmulator
) -> None:
    recordings = tmp_path / "recordings"
    async with recording_bridge(
        platform_emulator, recordings, env={"BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN}
    ) as b:
        agent = b.platform.create_agent(
            name="Front desk",
            behaviour={
                "mode": "echo",
                "greeting": False,
                "reply_delay_ms": 300,
                "vad": {"end_silence_ms": 200},
            },
        )
        script = CallScript.of(
            Pause(0.4),
            Talk(tone_ulaw(1.0), "first"),
            WaitForAgent(timeout_s=5, quiet_s=0.4),
            Talk(tone_ulaw(0.6), "second"),
            WaitForAgent(timeout_s=5, quiet_s=0.4),
            CallerHangsUp(),
            max_duration_s=30,
        )
        running = asyncio.create_task(b.call(agent, script, speed=1.0))
        # While it runs, the live view's figures of a call relayed here: its own relay
        # p99 once agent audio went through, and the agent turns measured so far.
        await eventually(
            lambda: any(
                c.relay_p99_ms is not None and c.turns >= 1
                for c in b.app.state.calls
                if isinstance(c, CallDriver)
            ),
            timeout_s=10.0,
        )
        (row,) = live_rows(b.app.state.calls, [], {})
        assert row.relay_p99_ms is not None and 0.0 < row.relay_p99_ms < 1000.0
        assert row.turns is not None and row.turns >= 1
        res = await running
        assert res.outcome is Outcome.COMPLETED, res.reason
        sid = res.call_sid
        await finalised(b, sid)
        rec = b.record(sid)
        turns = [e for e in rec.transcript if isinstance(e, AgentTurn)]
        assert len(turns) == 2, rec.transcript
        assert rec.duration_s is not None and rec.latency is not None

        ui = f"{b.url}/admin/ui"
        async with chromium(chromium_binary, tmp_path) as ctx:
            page = await ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{ui}/calls/{sid}")
            await page.fill("#token", b.token)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{ui}/calls/{sid}")

            # -- the transcript: every entry, in order, the end in plain words
            lines = page.locator("#transcript-lines li")
            await expect(lines).to_have_count(len(rec.transcript))
            await expect(lines.first).to_contain_text("+")
            await expect(page.locator("#transcript .tr-turn")).to_have_count(2)
            await expect(page.locator("#transcript .tr-caller").first).to_contain_text(
                "s of caller speech"
            )
            await expect(lines.last).to_contain_text("The caller hung up.")

            # -- the latency chart: one bar per agent turn, each as tall as its "heard"
            bars = page.locator("#latency-chart g.bar")
            await expect(bars).to_have_count(len(turns))
            heights = await page.eval_on_selector_all(
                "#latency-chart g.bar",
                "gs => gs.map(g => [...g.querySelectorAll('rect')]"
                ".reduce((h, r) => h + r.height.baseVal.value, 0))",
            )
            heard = [t.heard_ms or 0.0 for t in turns]
            # Bar heights are proportional to the turns' total latency.
            assert abs(heights[0] / heights[1] - heard[0] / heard[1]) < 0.02, (heights, heard)
            table_rows = page.locator("#latency-table tbody tr")
            await expect(table_rows).to_have_count(len(turns))
            await expect(table_rows.first).to_contain_text(f"{turns[0].agent_audio_ms:.0f} ms")
            assert rec.latency.heard is not None
            summary = page.locator("#latency-summary")
            await expect(summary).to_contain_text(f"{rec.latency.heard.worst_ms:.0f} ms")
            await expect(summary).to_contain_text(f"{rec.latency.heard.median_ms:.0f} ms")

            # -- the recording: loads through the console and lasts as long as the stream
            audio = page.locator("audio#recording-audio")
            await expect(audio).to_have_attribute("preload", "metadata")
            duration = await page.evaluate(
                """() => new Promise((ok, fail) => {
                    const a = document.getElementById('recording-audio');
                    if (a.readyState >= 1) return ok(a.duration);
                    a.addEventListener('loadedmetadata', () => ok(a.duration));
                    a.addEventListener('error', () => fail(new Error('audio error')));
                    a.load();
                })"""
            )
            assert abs(duration - rec.duration_s) <= 0.1, (duration, rec.duration_s)
            print(f"audio.duration {duration:.3f} s, stream duration {rec.duration_s:.3f} s")
            # Seekable: the browser may seek anywhere in it (Range requests work).
            seekable_end = await page.evaluate(
                "() => { const a = document.getElementById('recording-audio');"
                " return a.seekable.length ? a.seekable.end(0) : 0; }"
            )
            assert abs(seekable_end - duration) < 0.01
            wav = (recordings / f"{sid}.wav").read_bytes()
            part = await ctx.request.get(
                f"{ui}/calls/{sid}/recording", headers={"Range": "bytes=0-99"}
            )
            assert part.status == 206
            assert part.headers["content-range"] == f"bytes 0-99/{len(wav)}"
            assert await part.body() == wav[:100]
            missing = await ctx.request.get(f"{ui}/calls/CA{0:032d}/recording")
            assert missing.status == 404
            await page.wait_for_timeout(100)  # the player's controls finish drawing
            await shot(page, "call-detail-recorded", readme="console-call.png")
            await page.set_viewport_size(PHONE)  # type: ignore[arg-type]
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the call page scrolls sideways ({width} px)"
            await shot(page, "phone-call-detail-recorded")
            await page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
            assert errors == [], errors

        # -- the recording route is the console's: no session cookie, no audio
        async with httpx.AsyncClient(base_url=b.url, trust_env=False) as anonymous:
            r = await anonymous.get(f"/admin/ui/calls/{sid}/recording")
            assert r.status_code == 401 and b"RIFF" not in r.content
