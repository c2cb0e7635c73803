"""``bridge serve`` as a real process: insecure settings stop it at start with one line
naming the key (and never the secret); signatures turned off on purpose start, but say
so in the log, on ``/readyz`` and on ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

SECRET = "do-not-print-me-" + "z" * 8  # 24 characters: too short, and must not be echoed


def clean_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """The test process's environment without any bridge setting, plus ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELEVENLABS_", "TWILIO_", "BRIDGE_"))
    }
    return {**base, "BRIDGE_DB": str(tmp_path / "bridge.db"), **env}


def serve(
    tmp_path: Path, env: dict[str, str], toml: str | None = None
) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "bridge.cli"]
    if toml is not None:
        cfg = tmp_path / "bridge.toml"
        cfg.write_text(toml)
        args += ["--config", str(cfg)]
    return subprocess.run(
        [*args, "serve"],
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


PUBLIC = {"BRIDGE_PUBLIC_URL": "https://bridge.example.com"}

REFUSED = {
    "https public URL, no token": (PUBLIC, None, "twilio.auth_token", "BRIDGE_PUBLIC_URL"),
    "non-loopback public URL, no token": (
        {"BRIDGE_PUBLIC_URL": "http://bridge.internal:8080"},
        None,
        "twilio.auth_token",
        "BRIDGE_PUBLIC_URL",
    ),
    "listening on 0.0.0.0, no token": (
        {"BRIDGE_HOST": "0.0.0.0"},
        None,
        "twilio.auth_token",
        "BRIDGE_HOST",
    ),
    "empty TWILIO_AUTH_TOKEN": (
        {**PUBLIC, "TWILIO_AUTH_TOKEN": ""},
        None,
        "twilio.auth_token",
        "BRIDGE_PUBLIC_URL",
    ),
    "empty auth_token in TOML": (
        PUBLIC,
        '[twilio]\nauth_token = ""\n',
        "twilio.auth_token",
        "BRIDGE_PUBLIC_URL",
    ),
    "validation on without a token": (
        {"BRIDGE_VALIDATE_TWILIO_SIGNATURES": "true"},
        None,
        "twilio.validate_signatures",
        "BRIDGE_VALIDATE_TWILIO_SIGNATURES",
    ),
    "short admin token": (
        {"BRIDGE_ADMIN_TOKEN": SECRET},
        None,
        "admin.token",
        "BRIDGE_ADMIN_TOKEN",
    ),
    "admin token x": ({"BRIDGE_ADMIN_TOKEN": "x"}, None, "admin.token", "BRIDGE_ADMIN_TOKEN"),
    "short admin token in TOML": ({}, f'[admin]\ntoken = "{SECRET}"\n', "admin.token", None),
    "short stream secret": (
        {"BRIDGE_STREAM_SECRET": SECRET},
        None,
        "twilio.stream_secret",
        "BRIDGE_STREAM_SECRET",
    ),
}


@pytest.mark.parametrize(("env", "toml", "key", "where"), REFUSED.values(), ids=REFUSED.keys())
def test_insecure_configuration_refuses_to_start(
    tmp_path: Path, env: dict[str, str], toml: str | None, key: str, where: str | None
) -> None:
    done = serve(tmp_path, env, toml)
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"bridge: config {key} (from {where or tmp_path / 'bridge.toml'})")
    assert "expected" in lines[0]
    if key == "twilio.auth_token":
        assert "BRIDGE_VALIDATE_TWILIO_SIGNATURES=false" in lines[0]
    if key in ("admin.token", "twilio.stream_secret"):
        assert "secrets.token_urlsafe(32)" in lines[0]  # how to make a good one
    assert SECRET not in done.stderr + done.stdout
    assert not (tmp_path / "bridge.db").exists()  # nothing started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_signatures_turned_off_start_and_say_so(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        tmp_path,
        **PUBLIC,
        BRIDGE_PORT=str(port),
        BRIDGE_VALIDATE_TWILIO_SIGNATURES="false",
    )
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
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
            for _ in range(600):  # up to 30 s on a loaded machine
                assert proc.returncode is None, "bridge serve exited during start-up"
                try:
                    ready = await http.get("/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("bridge serve never became ready")
            # Ready (a dev set-up works), but the body says what is insecure.
            warning = ready.json()["warnings"]["twilio_signatures"]
            assert "BRIDGE_VALIDATE_TWILIO_SIGNATURES=false" in warning
            page = (await http.get("/metrics")).text
            assert "bridge_twilio_signatures_enforced 0.0" in page.splitlines()
        proc.send_signal(signal.SIGTERM)
        stdout, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode == 0
    events = [json.loads(x) for x in stdout.decode().splitlines() if x.startswith("{")]
    insecure = [e for e in events if e.get("event") == "bridge.insecure"]
    assert len(insecure) == 1 and insecure[0]["level"] == "warning", insecure
    assert insecure[0]["setting"] == "twilio_signatures"
