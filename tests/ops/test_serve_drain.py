"""SIGTERM on a real ``bridge serve`` process with calls in progress.

The bridge runs as a subprocess (its own signal handling, as in a container) against the
platform emulator on loopback; calls come from the synthetic caller.  After SIGTERM:
readiness is 503, a new call gets the overflow answer, the calls in progress finish
uncut (or, past the drain timeout, hear the notice), and the process exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bridge.emulator.twilio.caller import place_call
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk, WaitForAgent
from bridge.emulator.twilio.twiml import Reject, Say
from tests.e2e.conftest import heard_between, script_time, tone_ulaw
from tests.fixtures.platform_emulator import PlatformEmulator

NOTICE = "This line is closing now, goodbye."
OVERFLOW = "+14155550199"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    url: str
    http: httpx.AsyncClient
    out: list[dict[str, Any]]

    async def call(self, script: CallScript, to: str = "+14155550100") -> CallResult:
        return await place_call(
            self.url, to=to, script=script, speed=2.0, voice_path="/twilio/inbound"
        )

    async def metric(self, name: str) -> float:
        for line in (await self.http.get("/metrics")).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no {name} on /metrics")

    async def until(self, name: str, value: float, timeout_s: float = 20.0) -> None:
        for _ in range(int(timeout_s / 0.05)):
            if await self.metric(name) == value:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} never reached {value}")

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.out if line.get("event") == name]


@asynccontextmanager
async def served(
    platform: PlatformEmulator, tmp_path: Path, agent: str, ops: str
) -> AsyncIterator[Served]:
    port = _free_port()
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(
        f"""
[server]
port = {port}
[platform]
base_url = "{platform.http_url}"
api_key = "{platform.api_key}"
default_agent_id = "{agent}"
sync_interval_s = 0
[store]
db = "{tmp_path / "bridge.db"}"
[ops]
{ops}
"""
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELEVENLABS_", "TWILIO_", "BRIDGE_"))
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli",
        "--config",
        str(cfg),
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    out: list[dict[str, Any]] = []
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            for _ in range(400):  # up to 20 s on a loaded machine
                assert proc.returncode is None, "bridge serve exited during start-up"
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("bridge serve never became ready")
            yield Served(proc, url, http, out)
    finally:
        if proc.returncode is None:
            proc.kill()
        stdout, _ = await proc.communicate()
        out.extend(json.loads(x) for x in stdout.decode().splitlines() if x.startswith("{"))


CONVERSATION = CallScript.of(
    WaitForAgent(timeout_s=10, quiet_s=0.5),
    Talk(tone_ulaw(2.0)),
    WaitForAgent(timeout_s=10, quiet_s=0.6),
    Pause(0.5),
    CallerHangsUp(),
    max_duration_s=60,
)


async def test_sigterm_lets_calls_finish_refuses_new_ones_and_exits_0(
    platform_emulator: PlatformEmulator, tmp_path: Path
) -> None:
    agent = platform_emulator.create_agent(
        behaviour={"mode": "echo"}, first_message="Hello, you are through to the test line."
    )
    async with served(platform_emulator, tmp_path, agent, "drain_timeout_s = 60") as bridge:
        calls = [asyncio.create_task(bridge.call(CONVERSATION)) for _ in range(2)]
        await bridge.until("bridge_active_calls", 2)
        bridge.proc.send_signal(signal.SIGTERM)
        await bridge.until("bridge_draining", 1)
        ready = await bridge.http.get("/readyz")
        assert ready.status_code == 503
        refused = await bridge.call(CallScript(max_duration_s=10))
        assert refused.outcome is Outcome.REJECTED
        assert [type(v) for v in refused.experience] == [Reject]
        assert refused.streams == []
        assert await bridge.metric("bridge_active_calls") == 2  # still running
        results = await asyncio.gather(*calls)
        assert await asyncio.wait_for(bridge.proc.wait(), 30) == 0
    for res in results:
        # Uncut: the caller hung up when it chose to, after hearing its echo.
        assert res.outcome is Outcome.COMPLETED, res.reason
        assert res.stream is not None and res.stream.ended_by == "caller"
        assert len(heard_between(res, script_time(res, "talk-end"))) >= 8000 * 1.5
        assert not any(isinstance(v, Say) for v in res.experience)
    (done,) = bridge.events("drain.done")
    assert done["ended_at_timeout"] == 0 and not done["forced"]
    assert [e["reason"] for e in bridge.events("call.refused")] == ["draining"]
    assert bridge.events("bridge.stopped")


async def test_drain_timeout_says_the_notice_and_dials_overflow(
    platform_emulator: PlatformEmulator, tmp_path: Path
) -> None:
    agent = platform_emulator.create_agent(behaviour={"mode": "echo"}, first_message="Hi there.")
    ops = f'drain_timeout_s = 1.0\ndrain_notice = "{NOTICE}"\ndrain_overflow_number = "{OVERFLOW}"'
    async with served(platform_emulator, tmp_path, agent, ops) as bridge:
        endless = CallScript.of(WaitForAgent(timeout_s=10), Pause(120), max_duration_s=130)
        call = asyncio.create_task(bridge.call(endless))
        await bridge.until("bridge_active_calls", 1)
        bridge.proc.send_signal(signal.SIGTERM)
        await bridge.until("bridge_draining", 1)
        overflow = await bridge.call(CallScript(max_duration_s=10))
        assert overflow.transfer_to == OVERFLOW  # <Dial> to the overflow number
        res = await asyncio.wait_for(call, 30)
        assert await asyncio.wait_for(bridge.proc.wait(), 30) == 0
    assert res.outcome is Outcome.COMPLETED, res.reason
    assert [v.text for v in res.experience if isinstance(v, Say)] == [NOTICE]
    (done,) = bridge.events("drain.done")
    assert done["ended_at_timeout"] == 1
    (summary,) = bridge.events("call.summary")
    assert summary["end_reason"] == "shutdown"
