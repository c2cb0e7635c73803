"""The system under test when no ``--target`` is given: emulator and bridge as child processes.

Child processes, not in-process servers, so the bridge's CPU and memory are its own and
can be read from ``/proc/<pid>`` without the load generator's share mixed in.  Both are
started with this interpreter (``python -m bridge.cli …``), never through a wrapper, so
the PID we measure is the server itself.

Set-up, in order:

1. the Agents Platform emulator on a free loopback port (``bridge emulator --port N
   --api-key K``, K random: the bridge is given the same key);
2. one agent per (behaviour, format) the run needs, created over the emulator's REST API
   (``POST /v1/convai/agents/create``), as an operator would create real agents;
3. a config file for the bridge: listen and public URL on another free loopback port,
   the emulator as ``platform.base_url`` (routing sync off: the routes are static), a
   random Twilio auth token (so signatures are enforced, as in production), a SQLite file
   in the run directory, and one ``[[routes]]`` entry per (behaviour, format): the called
   number selects the agent, which is the bridge's documented routing mechanism;
4. ``bridge --config that-file serve``.

Teardown always runs (errors, Ctrl-C): SIGTERM, a grace period, then SIGKILL.  Child
output goes to ``<report>/stack/*.log`` so a failed run can be diagnosed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bridge.errors import BridgeError
from bridge.loadtest.params import AGENT_FORMATS
from bridge.loadtest.scenario import BEHAVIOURS, GREETING

READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0
ACCOUNT_SID = "AC" + "0" * 32
EMULATOR_COMMAND = [sys.executable, "-m", "bridge.cli", "emulator"]  # + --host/--port/--api-key
BRIDGE_COMMAND = [sys.executable, "-m", "bridge.cli"]  # + --config FILE serve


class StackError(BridgeError):
    """The bridge or the emulator could not be started (the message says which and why)."""


@dataclass(frozen=True)
class Child:
    name: str
    pid: int
    url: str
    log: Path


@dataclass(frozen=True)
class Target:
    """Where calls go and what to measure: the same shape for a started stack and --target."""

    bridge_url: str
    auth_token: str | None
    numbers: dict[tuple[str, str], str]  # (scenario kind, agent format) → number to call
    bridge_pid: int | None = None  # /proc measurement when we started it
    bridge_group: bool = False  # bridge_pid is a supervisor: add its workers' figures
    emulator_pid: int | None = None
    metrics_url: str | None = None  # remote: the bridge's /metrics
    # Several instances: call i goes to bridge_urls[i % n]; CPU/RSS summed over their
    # /metrics.  Empty: bridge_url alone.
    bridge_urls: tuple[str, ...] = ()

    def url_for(self, index: int) -> str:
        if not self.bridge_urls:
            return self.bridge_url
        return self.bridge_urls[index % len(self.bridge_urls)]

    def metrics_urls(self) -> tuple[str, ...]:
        if self.bridge_urls:
            return tuple(u + "/metrics" for u in self.bridge_urls)
        return (self.metrics_url,) if self.metrics_url else ()


def free_port() -> int:
    """A free loopback port (bound then released: the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def number_for(kind: str, fmt: str) -> str:
    kinds = list(BEHAVIOURS)
    return f"+1555{200 + kinds.index(kind)}{AGENT_FORMATS.index(fmt):04d}"


def bridge_config(
    port: int,
    emulator_url: str,
    api_key: str,
    auth_token: str,
    db: Path,
    routes: dict[str, str],
    record: bool = False,
) -> str:
    lines = [
        "# Written by bridge loadtest for one run.",
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f'public_url = "http://127.0.0.1:{port}"',
        "[platform]",
        f'base_url = "{emulator_url}"',
        f'api_key = "{api_key}"',
        "sync_interval_s = 0.0",
        "[twilio]",
        f'auth_token = "{auth_token}"',
        # Never reach the real Twilio API from a load test: REST calls fail fast here.
        'api_base_url = "http://127.0.0.1:9"',
        "[store]",
        f'db = "{db}"',
        "[log]",
        'level = "info"',
    ]
    if record:
        lines += ["[recording]", "enabled = true", f'dir = "{db.parent / "recordings"}"']
    for number, agent_id in sorted(routes.items()):
        lines += ["[[routes]]", f'number = "{number}"', f'agent_id = "{agent_id}"']
    return "\n".join(lines) + "\n"


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # The child's settings come from the config file we write, nothing inherited.
    for key in list(env):
        if key.startswith(("BRIDGE_", "ELEVENLABS_", "TWILIO_")):
            del env[key]
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


async def _spawn(
    name: str, argv: list[str], log: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    out = log.open("wb")
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=_child_env(env),
            start_new_session=True,  # Ctrl-C in the terminal is ours to handle, not theirs
        )
    finally:
        out.close()


async def _wait_ready(
    proc: asyncio.subprocess.Process, name: str, url: str, log: Path, client: httpx.AsyncClient
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            tail = log.read_text(errors="replace")[-1500:]  # noqa: ASYNC240 - start-up failure path
            raise StackError(
                f"{name} exited with status {proc.returncode} during start-up:\n{tail}"
            )
        with contextlib.suppress(httpx.TransportError):
            await client.get(url, timeout=1.0)
            return  # any HTTP answer means it is serving
        await asyncio.sleep(0.1)
    raise StackError(f"{name} did not answer on {url} within {READY_TIMEOUT_S:g}s (log: {log})")


async def stop_child(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE_S; waits for the exit (also bridge call's)."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def create_agent(
    client: httpx.AsyncClient, emulator_url: str, kind: str, fmt: str, api_key: str
) -> str:
    body = {
        "name": f"loadtest {kind} {fmt}",
        "tags": ["loadtest"],
        "conversation_config": {
            "asr": {"user_input_audio_format": fmt},
            "tts": {"agent_output_audio_format": fmt},
            "agent": {
                "first_message": GREETING if BEHAVIOURS[kind]["greeting"] else "",
                "language": "en",
                "emulator": BEHAVIOURS[kind],
            },
        },
    }
    resp = await client.post(
        f"{emulator_url}/v1/convai/agents/create", json=body, headers={"xi-api-key": api_key}
    )
    if resp.status_code != 200:
        raise StackError(
            f"creating the {kind} agent for {fmt} failed: HTTP {resp.status_code} {resp.text[:500]}"
        )
    agent_id: str = resp.json()["agent_id"]
    return agent_id


@contextlib.asynccontextmanager
async def started_stack(
    run_dir: Path,
    needs: list[tuple[str, str]],
    max_calls: int = 0,
    workers: int = 1,
    record: bool = False,
) -> AsyncIterator[tuple[Target, list[Child]]]:
    """Start emulator + bridge for the (scenario kind, format) pairs in ``needs``.

    ``max_calls``: the bridge's concurrent-call cap (at least the calls the run places;
    0 = none): the default cap (docs/performance.md) would refuse a larger load test.
    ``workers`` > 1: ``bridge serve --workers N``; its CPU and memory are those of the
    supervisor and its workers together (:func:`bridge.loadtest.procstat.read_group`).
    """
    stack_dir = run_dir / "stack"
    stack_dir.mkdir(parents=True, exist_ok=True)
    procs: list[asyncio.subprocess.Process] = []
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
        try:
            api_key = secrets.token_hex(16)
            emu_port = free_port()
            emu_url = f"http://127.0.0.1:{emu_port}"
            emu_log = stack_dir / "emulator.log"
            emu = await _spawn(
                "emulator",
                [
                    *EMULATOR_COMMAND,
                    *("--host", "127.0.0.1", "--port", str(emu_port), "--api-key", api_key),
                    *("--log-level", "warning"),
                ],
                emu_log,
            )
            procs.append(emu)
            await _wait_ready(
                emu, "the platform emulator", emu_url + "/v1/convai/agents", emu_log, client
            )
            routes: dict[str, str] = {}
            numbers: dict[tuple[str, str], str] = {}
            for kind, fmt in needs:
                agent_id = await create_agent(client, emu_url, kind, fmt, api_key)
                numbers[(kind, fmt)] = number_for(kind, fmt)
                routes[numbers[(kind, fmt)]] = agent_id
            token = secrets.token_hex(16)
            port = free_port()
            cfg = stack_dir / "bridge.toml"
            cfg.write_text(
                bridge_config(
                    port, emu_url, api_key, token, stack_dir / "bridge.db", routes, record
                )
            )
            bridge_url = f"http://127.0.0.1:{port}"
            bridge_log = stack_dir / "bridge.log"
            bridge = await _spawn(
                "bridge",
                [*BRIDGE_COMMAND, "--config", str(cfg), "serve", "--workers", str(workers)],
                bridge_log,
                {"BRIDGE_MAX_CONCURRENT_CALLS": str(max_calls)},
            )
            procs.append(bridge)
            await _wait_ready(bridge, "the bridge", bridge_url + "/", bridge_log, client)
            target = Target(
                bridge_url=bridge_url,
                auth_token=token,
                numbers=numbers,
                bridge_pid=bridge.pid,
                bridge_group=workers > 1,
                emulator_pid=emu.pid,
            )
            children = [
                Child("emulator", emu.pid, emu_url, emu_log),
                Child("bridge", bridge.pid, bridge_url, bridge_log),
            ]
            yield target, children
        finally:
            # Bridge first (it holds agent sockets), then the emulator; shielded so a
            # second Ctrl-C cannot leave children behind.
            for proc in reversed(procs):
                await asyncio.shield(stop_child(proc))
