"""A private ``bridge serve`` for ``bridge call --local``: a child process on loopback.

The child gets a config file of its own (a free loopback port, a SQLite file in a
temporary directory, nothing inherited from the environment), so it runs the built-in
Agents Platform and Twilio emulators in-process, exactly as a newcomer's ``bridge serve``
does, and is stopped (SIGTERM, then SIGKILL after a grace period) when the call is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from bridge.errors import BridgeError
from bridge.loadtest.stack import stop_child

READY_TIMEOUT_S = 30.0


class LocalBridgeError(BridgeError):
    """The private bridge did not start (the message has the end of its log)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(port: int, db: Path) -> str:
    return (
        "# Written by bridge call --local for one call.\n"
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[store]\ndb = "{db}"\n'
        '[log]\nlevel = "warning"\n'
    )


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BRIDGE_", "ELEVENLABS_", "TWILIO_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.asynccontextmanager
async def local_bridge() -> AsyncIterator[str]:
    """Start the child, wait until it answers HTTP, yield its base URL; stop it after."""
    with tempfile.TemporaryDirectory(prefix="bridge-call-") as tmp:
        run_dir = Path(tmp)
        port = _free_port()
        cfg = run_dir / "bridge.toml"
        cfg.write_text(_config(port, run_dir / "bridge.db"))
        log = run_dir / "bridge.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "bridge.cli", "--config", str(cfg), "serve"),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=_env(),
                start_new_session=True,  # Ctrl-C is ours to handle: we hang up, then stop it
            )
        url = f"http://127.0.0.1:{port}"
        try:
            await _wait_ready(proc, url, log)
            yield url
        finally:
            await asyncio.shield(stop_child(proc))


async def _wait_ready(proc: asyncio.subprocess.Process, url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(trust_env=False) as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                tail = log.read_text(errors="replace")[-1500:]  # noqa: ASYNC240 - failure path
                raise LocalBridgeError(f"the local bridge exited with {proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                await http.get(url + "/healthz", timeout=1.0)
                return
            await asyncio.sleep(0.1)
    raise LocalBridgeError(f"the local bridge did not answer on {url} in {READY_TIMEOUT_S:g} s")
