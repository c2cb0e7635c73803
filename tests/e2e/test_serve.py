"""`bridge serve` as a user runs it: no upstream configured, a synthetic call, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

from bridge.emulator.twilio import inprocess
from bridge.emulator.twilio.caller import place_call
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, WaitForAgent
from tests.e2e.conftest import heard_between


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(400):  # up to 20 s on a loaded machine
        if proc.returncode is not None:
            raise AssertionError(f"bridge serve exited early with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("bridge serve never started listening")


async def test_serve_without_upstream_uses_the_emulator_and_takes_a_call(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELEVENLABS_", "TWILIO_", "BRIDGE_"))
    }
    env.update({"BRIDGE_PORT": str(port), "BRIDGE_DB": str(tmp_path / "bridge.db")})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli",
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _wait_listening(port, proc)
        script = CallScript.of(
            WaitForAgent(timeout_s=10, quiet_s=0.6), CallerHangsUp(), max_duration_s=20
        )
        res = await place_call(
            f"http://127.0.0.1:{port}",
            to="+14155550100",
            script=script,
            speed=4.0,
            voice_path="/twilio/inbound",
            auth_token=inprocess.AUTH_TOKEN,  # the in-process Twilio emulator's
        )
        assert res.outcome is Outcome.COMPLETED, res.reason
        assert len(heard_between(res, 0.0)) > 8000  # the seeded echo agent's greeting
        # Signatures are checked (with that token), not switched off: unsigned is refused.
        unsigned = await place_call(
            f"http://127.0.0.1:{port}", to="+14155550100", voice_path="/twilio/inbound"
        )
        assert unsigned.webhook is not None and unsigned.webhook.status == 403
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    (notice,) = [line for line in lines if line["event"] == "serve.using_emulator"]
    assert notice["default_agent"] == "agent_emulator_echo"
    assert notice["emulator_url"].startswith("http://127.0.0.1:")
    assert "call.summary" in events and "bridge.stopped" in events
    assert "Traceback" not in stderr.decode()
