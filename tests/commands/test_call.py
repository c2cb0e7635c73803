"""`bridge call` against a live bridge (both emulators), and the offline walk-through of
the README against a real `bridge serve` process: agents create → numbers import →
bridge call --to reaches that agent."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from bridge.cli import main
from bridge.emulator.twilio import inprocess
from tests.admin.stack import BridgeUnderTest, free_port
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

SPEED = "2"  # call time runs twice as fast as the wall clock (the WAV is in call time)
GREETING = "Hello, you are talking to the test agent."


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(float) ** 2))) if len(x) else 0.0


async def _call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = await asyncio.to_thread(main, ["call", *argv, "--speed", SPEED])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def caller_env(monkeypatch: pytest.MonkeyPatch, twilio_emulator: TwilioEmulator) -> None:
    """What `bridge call` reads: the bridge's Twilio token (it signs the webhook)."""
    for key in list(os.environ):
        if key.startswith(("BRIDGE_", "TWILIO_", "ELEVENLABS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", twilio_emulator.auth_token)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", twilio_emulator.account_sid)


@pytest.mark.usefixtures("caller_env")
async def test_call_prints_the_timeline_and_writes_what_the_caller_heard(
    bridge: BridgeUnderTest,
    platform_emulator: PlatformEmulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    agent = platform_emulator.create_agent(behaviour={"mode": "echo"}, first_message=GREETING)
    number = bridge.number_for(agent)
    wav_path = tmp_path / "heard.wav"
    rc, out, err = await _call(
        capsys, "--target", bridge.url, "--to", number, "--turns", "2", "--stereo",
        "--wav", str(wav_path),
    )  # fmt: skip
    assert (rc, err) == (0, ""), out

    # The timeline: connected to that agent, the greeting, two turns with replies, the end.
    assert "connected: media stream MZ" in out and f"(agent {agent})" in out
    assert re.search(r"agent\s+greeting heard \d+ ms after connecting", out), out
    assert len(re.findall(r"caller\s+talks \(turn \d\)", out)) == 2, out
    latencies = [int(ms) for ms in re.findall(r"turn \d: reply heard (\d+) ms", out)]
    assert len(latencies) == 2, out
    # The echo agent answers after ~0.5 s of caller silence (its VAD), never before the
    # caller stopped; a reply cannot be heard before it was sent.
    assert all(0 < ms < 5000 for ms in latencies), latencies
    assert "ended: the caller hung up" in out
    times = [float(t) for t in re.findall(r"^\s+(\d+\.\d\d)s  ", out, re.M)]
    assert times == sorted(times), "the timeline is printed in time order"

    # The WAV: 8 kHz 16-bit stereo, as long as the call, the agent audible on the right
    # channel where the timeline says it was heard, the caller on the left while talking.
    (seconds,) = re.findall(r"Recording: .*heard.wav \((\d+\.\d) s, 8 kHz 16-bit, stereo", out)
    with wave.open(str(wav_path)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 2)
        assert abs(w.getnframes() / 8000 - float(seconds)) <= 0.051  # printed to 0.1 s
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    caller, heard = pcm[:, 0], pcm[:, 1]
    greeting_at = _event_time(out, r"agent\s+greeting heard")
    talk_at = _event_time(out, r"caller\s+talks \(turn 1\)")
    quiet_until = int(greeting_at * 8000) - 80  # before the greeting: silence
    assert _rms(heard[:quiet_until]) == 0.0
    assert _rms(heard[int(greeting_at * 8000) : int(talk_at * 8000)]) > 300  # the greeting
    # The caller listened until it talked.  Its frames sit at their place in the stream
    # (20 ms each); the printed time is when the frame went out, later on a loaded loop.
    assert _rms(caller[: int((talk_at - 0.5) * 8000)]) == 0.0
    assert _rms(caller[int(talk_at * 8000) : int((talk_at + 1.0) * 8000)]) > 300
    reply_at = _event_time(out, r"agent\s+reply heard")
    assert _rms(heard[int(reply_at * 8000) : int((reply_at + 0.5) * 8000)]) > 300

    # The platform saw one conversation with that agent.
    (conversation,) = platform_emulator.conversations(agent)
    assert conversation.agent_id == agent


@pytest.mark.usefixtures("caller_env")
async def test_the_callers_latency_counts_from_the_end_of_the_talk(
    bridge: BridgeUnderTest,
    platform_emulator: PlatformEmulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # An echo agent that answers 1000 ms after the caller's speech ended; a tone ends
    # crisply, so its VAD and the caller agree on that moment.  Real time (speed 1): the
    # agent's delay is wall time.
    agent = platform_emulator.create_agent(
        behaviour={"mode": "echo", "reply_delay_ms": 1000}, first_message="Hi."
    )
    argv = ["call", "--target", bridge.url, "--to", bridge.number_for(agent), "--turns", "1"]
    argv += ["--tone", "440", "--talk", "0.6", "--wav", str(tmp_path / "d.wav")]
    capsys.readouterr()
    rc = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    assert (rc, err) == (0, ""), out
    (ms,) = (int(x) for x in re.findall(r"turn 1: reply heard (\d+) ms", out))
    # Never sooner than the agent's delay (less the caller's last 20 ms frame); the upper
    # bound rules out counting from another moment (the talk's start is 600 ms earlier).
    assert 980 <= ms < 1500, out


def _event_time(out: str, pattern: str) -> float:
    m = re.search(rf"^\s+(\d+\.\d\d)s  {pattern}", out, re.M)
    assert m, (pattern, out)
    return float(m.group(1))


@pytest.mark.usefixtures("caller_env")
async def test_call_to_a_number_no_agent_answers_exits_1_with_one_line(
    bridge: BridgeUnderTest, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # This bridge has no default agent, and nothing routes this number.
    rc, _, err = await _call(
        capsys, "--target", bridge.url, "--to", "+15550007777", "--wav", str(tmp_path / "x.wav")
    )
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("bridge call: "), err
    assert "no agent took the call to +15550007777" in err
    assert (tmp_path / "x.wav").exists()  # what was heard is kept all the same


async def test_a_wrong_auth_token_is_named_as_the_reason(
    bridge: BridgeUnderTest, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith(("BRIDGE_", "TWILIO_", "ELEVENLABS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "not-the-bridges-token")
    rc, out, err = await _call(capsys, "--target", bridge.url, "--wav", os.devnull)
    assert rc == 1 and "webhook: HTTP 403" in out
    assert err == (
        "bridge call: the bridge refused the webhook's signature (HTTP 403): "
        "set TWILIO_AUTH_TOKEN to the auth token the bridge runs with\n"
    )


async def test_call_when_nothing_answers_says_how_to_start_a_bridge(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    url = f"http://127.0.0.1:{free_port()}"
    rc, _, err = await _call(capsys, "--target", url)
    assert rc == 2
    assert err.count("\n") == 1, err
    assert f"nothing answers at {url}" in err and "bridge serve" in err and "--local" in err


async def test_bad_options_name_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, flag in (
        (["--to", "555"], "--to"),
        (["--turns", "0", "--barge-in"], "--barge-in"),
        (["--tone", "9000"], "--tone"),
    ):
        rc, _, err = await _call(capsys, *argv)
        assert rc == 2 and err.startswith(f"bridge: {flag}:"), err


# ------------------------------------------------------------------ the README walk-through


def _serve_env(tmp_path: Path, port: int, token: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELEVENLABS_", "TWILIO_", "BRIDGE_"))
    }
    return {
        **env,
        "BRIDGE_PORT": str(port),
        "BRIDGE_DB": str(tmp_path / "bridge.db"),
        "BRIDGE_ADMIN_TOKEN": token,
    }


async def _cli(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bridge.cli", *argv),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _wait_serving(url: str, proc: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for _ in range(600):  # up to 30 s on a loaded machine
            if proc.returncode is not None:
                raise AssertionError(f"bridge serve exited early with {proc.returncode}")
            try:
                await http.get(url + "/healthz", timeout=1.0)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise AssertionError("bridge serve never answered")


async def test_offline_walkthrough_agents_create_numbers_import_call(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = "walkthrough-admin-token-0123456789abcdef"
    env = _serve_env(tmp_path, port, token)
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bridge.cli", "serve"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _wait_serving(url, serve)
        rc, out, err = await _cli(
            env, "agents", "create", "--name", "Support", "--prompt", "You answer.", "--json"
        )
        assert rc == 0, err
        agent = json.loads(out)["agent_id"]

        number = inprocess.NUMBERS[1]
        rc, out, err = await _cli(env, "numbers", "import", number, "--agent", agent)
        assert rc == 0, err
        assert f"{url}/twilio/inbound" in out  # the emulated Twilio number points here now

        # A number the emulated account does not have: the error names the CLI's flag.
        rc, _, err = await _cli(env, "numbers", "import", "+15550001234", "--agent", agent)
        assert rc == 1
        assert "pass --no-twilio" in err and "configure_twilio" not in err, err

        wav = tmp_path / "walk.wav"
        rc, out, err = await _cli(
            env, "call", "--to", number, "--turns", "1", "--wav", str(wav), "--speed", SPEED
        )
        assert rc == 0, out + err
        assert f"(agent {agent})" in out and "reply heard" in out
        (sid,) = re.findall(r"^Calling .*: call (CA[0-9a-f]{32}) ", out, re.M)

        # The bridge's own record of the call names that agent.
        async with httpx.AsyncClient(
            base_url=url, headers={"authorization": f"Bearer {token}"}, trust_env=False
        ) as http:
            for _ in range(100):
                record = (await http.get(f"/admin/calls/{sid}")).json()
                if record.get("ended_at"):
                    break
                await asyncio.sleep(0.1)
        assert (record["to_number"], record["agent_id"]) == (number, agent), record
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(serve.communicate(), 30)
    lines = [json.loads(x) for x in stdout.decode().splitlines() if x.startswith("{")]
    (notice,) = [x for x in lines if x["event"] == "serve.using_twilio_emulator"]
    assert notice["numbers"] == list(inprocess.NUMBERS)
    assert "Traceback" not in stderr.decode()
