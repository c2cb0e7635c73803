"""``bridge serve --workers 2`` as a real process group, calls from the synthetic caller.

The supervisor runs two worker processes on one port (SO_REUSEPORT) against the platform
emulator on loopback.  Which worker takes a stream is the kernel's choice (a hash of the
connection's addresses), so each test places calls until both workers hold one, reading
the worker of each call from the log (every worker line carries ``worker``).  Then:

* ``/metrics`` on the shared port reports the group: ``bridge_active_calls`` is the
  sum of both workers' calls;
* SIGKILL of one worker: the supervisor starts it again, the other worker's calls go on
  and end normally, and the dead worker's calls leave the sum;
* SIGTERM of the supervisor: both workers drain, their calls end when the callers hang
  up (uncut), and the group exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.emulator.twilio.caller import SyntheticCall, place_call
from bridge.emulator.twilio.inprocess import AUTH_TOKEN as EMULATOR_TOKEN
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallScript, Pause, WaitForAgent
from bridge.emulator.twilio.twiml import Say
from bridge.ops.group import GroupStatus
from bridge.ops.supervisor import RestartPolicy
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.ops.test_serve_drain import _free_port

MAX_CALLS = 12  # a call lands on a given worker with p = 1/2: all 12 on one is ~1 in 2000
# Hears the greeting, then stays on the line until the test hangs up as the caller.
HOLD = CallScript.of(WaitForAgent(timeout_s=15, quiet_s=0.3), Pause(120), max_duration_s=150)


class Calls:
    """The calls placed, by SID (a ``CallRegistry``: the test hangs them up itself)."""

    def __init__(self) -> None:
        self.by_sid: dict[str, SyntheticCall] = {}

    def register(self, call: SyntheticCall) -> None:
        self.by_sid[call.call_sid] = call


@dataclass
class Group:
    proc: asyncio.subprocess.Process
    url: str
    http: httpx.AsyncClient
    lines: list[dict[str, Any]] = field(default_factory=list)
    calls: Calls = field(default_factory=Calls)
    tasks: dict[str, asyncio.Task[CallResult]] = field(default_factory=dict)
    auth_token: str | None = None  # the webhooks' signing token, when signatures are checked

    def events(self, name: str, **match: object) -> list[dict[str, Any]]:
        return [
            e
            for e in self.lines
            if e.get("event") == name and all(e.get(k) == v for k, v in match.items())
        ]

    async def until(
        self, what: str, check: Any, timeout_s: float = 30.0, supervised: bool = True
    ) -> Any:
        for _ in range(int(timeout_s / 0.05)):
            found = check()
            if found:
                return found
            if supervised:
                assert self.proc.returncode is None, f"the supervisor exited waiting for {what}"
            await asyncio.sleep(0.05)
        raise AssertionError(f"never: {what}")

    async def metric(self, name: str) -> float:
        for line in (await self.http.get("/metrics")).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no {name} on /metrics")

    def worker_of(self) -> dict[str, int]:
        """Call SID -> index of the worker whose stream it is."""
        return {e["call_sid"]: e["worker"] for e in self.events("call.started")}

    def live_on(self, worker: int) -> list[str]:
        return [
            sid
            for sid, w in self.worker_of().items()
            if w == worker and sid in self.tasks and not self.tasks[sid].done()
        ]

    async def call_both_workers(self) -> None:
        """Place held calls until each worker has one streaming (at most MAX_CALLS)."""
        for _ in range(MAX_CALLS):
            placed = len(self.tasks)
            task = asyncio.create_task(
                place_call(
                    self.url,
                    script=HOLD,
                    voice_path="/twilio/inbound",
                    registry=self.calls,
                    auth_token=self.auth_token,
                )
            )
            await self.until("the call's registration", lambda n=placed: len(self.calls.by_sid) > n)
            sid = list(self.calls.by_sid)[-1]
            self.tasks[sid] = task
            await self.until(f"{sid} streaming", lambda sid=sid: sid in self.worker_of())
            if self.live_on(0) and self.live_on(1):
                return
        raise AssertionError(f"{MAX_CALLS} calls, all on one worker: {self.worker_of()}")

    def heard_agent(self, sids: list[str]) -> bool:
        """Each of these callers has heard agent audio (the greeting) by now."""
        streams = [self.calls.by_sid[s].result.stream for s in sids]
        return all(st is not None and st.heard for st in streams)

    async def hang_up(self, sids: list[str]) -> list[CallResult]:
        for sid in sids:
            self.calls.by_sid[sid].hang_up(by="caller")
        return await asyncio.wait_for(asyncio.gather(*(self.tasks[s] for s in sids)), 30)

    async def ready(self, timeout_s: float = 30.0) -> None:
        """Until ``/readyz`` (whichever worker answers) is 200: both workers running."""
        for _ in range(int(timeout_s / 0.1)):
            assert self.proc.returncode is None, "the supervisor exited"
            if (await self.http.get("/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the group never became ready")

    def pid(self, worker: int) -> int:
        started = self.events("worker.started", worker=worker)
        assert started, f"worker {worker} never started"
        pid: int = started[-1]["pid"]
        return pid


@contextlib.asynccontextmanager
async def group(
    platform: PlatformEmulator | None, tmp_path: Path, agent: str = ""
) -> AsyncIterator[Group]:
    """``bridge serve --workers 2``; with no ``platform``, its built-in emulators."""
    port = _free_port()
    cfg = tmp_path / "bridge.toml"
    upstream = ""
    if platform is not None:
        upstream = f"""
[platform]
base_url = "{platform.http_url}"
api_key = "{platform.api_key}"
default_agent_id = "{agent}"
sync_interval_s = 0"""
    cfg.write_text(
        f"""{upstream}
[store]
db = "{tmp_path / "bridge.db"}"
[ops]
drain_timeout_s = 60
"""
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELEVENLABS_", "TWILIO_", "BRIDGE_", "PROMETHEUS_"))
    }
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bridge.cli", "--config", str(cfg), "serve"),
        *("--port", str(port), "--workers", "2"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    lines: list[dict[str, Any]] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            text = raw.decode(errors="replace").strip()
            if text.startswith("{"):
                lines.append(json.loads(text))

    reader = asyncio.create_task(read())
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            g = Group(proc, url, http, lines, auth_token=None if platform else EMULATOR_TOKEN)
            await g.until(
                "both workers listening",
                lambda: {e["worker"] for e in g.events("serve.listening")} == {0, 1},
            )
            await g.ready()
            yield g
    finally:
        # A test that failed midway: nothing may outlive it (orphaned workers would drain).
        for e in lines:
            if e.get("event") == "worker.started" and _ours(e["pid"], cfg):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(e["pid"], signal.SIGKILL)
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        for e in lines:  # removed by the supervisor unless a test killed it
            if e.get("event") == "supervisor.started":
                shutil.rmtree(e["group_dir"], ignore_errors=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, 10)


def _ours(pid: int, cfg: Path) -> bool:
    """``pid`` is still a worker of this test's group (not a reused pid)."""
    try:
        return str(cfg).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.fixture
def echo_agent(platform_emulator: PlatformEmulator) -> str:
    return platform_emulator.create_agent(
        behaviour={"mode": "echo"}, first_message="Hello, you are through."
    )


async def test_metrics_sum_the_workers_and_a_killed_worker_is_restarted(
    platform_emulator: PlatformEmulator, tmp_path: Path, echo_agent: str
) -> None:
    async with group(platform_emulator, tmp_path, echo_agent) as g:
        ready = await g.http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["workers"] == "ok"

        await g.call_both_workers()
        on0, on1 = g.live_on(0), g.live_on(1)
        # One page from one worker, the calls of both: the sum over the live workers.
        assert await g.metric("bridge_active_calls") == len(on0) + len(on1)

        killed = g.pid(0)
        os.kill(killed, signal.SIGKILL)
        await g.until(
            "worker 0 restarted",
            lambda: [e for e in g.events("serve.listening", worker=0) if e["pid"] != killed],
        )
        (exited,) = g.events("worker.exited", worker=0)
        assert exited["pid"] == killed and exited["status"] == -signal.SIGKILL
        assert g.events("worker.restarting", worker=0)
        assert g.pid(1) == g.events("worker.started", worker=1)[0]["pid"]  # never touched
        # The dead worker's calls are gone from the sum; worker 1's are all still there.
        assert await g.metric("bridge_active_calls") == len(on1)
        assert g.live_on(1) == on1
        await g.ready()  # both running again

        await g.until("worker 1's callers hear the agent", lambda: g.heard_agent(on1))
        for res in await g.hang_up(on1):
            assert res.outcome is Outcome.COMPLETED, res.reason
            assert res.stream is not None and res.stream.ended_by == "caller"
            assert res.stream.heard  # the greeting, through worker 1
        for sid in on0:  # their worker died under them
            res = await asyncio.wait_for(g.tasks[sid], 30)
            assert res.stream is not None and res.stream.ended_by != "caller"

        # The restarted worker takes calls: place until one streams there.
        await g.call_both_workers()
        assert await g.metric("bridge_active_calls") == len(g.live_on(0)) + len(g.live_on(1))
        await g.hang_up(g.live_on(0) + g.live_on(1))
        g.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(g.proc.wait(), 30) == 0


async def test_sigterm_drains_every_worker_and_the_group_exits_0(
    platform_emulator: PlatformEmulator, tmp_path: Path, echo_agent: str
) -> None:
    async with group(platform_emulator, tmp_path, echo_agent) as g:
        await g.call_both_workers()
        live = g.live_on(0) + g.live_on(1)
        g.proc.send_signal(signal.SIGTERM)
        await g.until(
            "both workers draining",
            lambda: {e["worker"] for e in g.events("drain.started")} == {0, 1},
        )
        assert await g.metric("bridge_draining") == 1
        assert (await g.http.get("/readyz")).status_code == 503
        assert await g.metric("bridge_active_calls") == len(live)  # not cut
        results = await g.hang_up(live)
        assert await asyncio.wait_for(g.proc.wait(), 30) == 0
    for res in results:
        assert res.outcome is Outcome.COMPLETED, res.reason
        assert res.stream is not None and res.stream.ended_by == "caller"
        assert not any(isinstance(v, Say) for v in res.experience)  # no drain notice
    done = g.events("drain.done")
    assert sorted(e["worker"] for e in done) == [0, 1]
    assert all(e["ended_at_timeout"] == 0 and not e["forced"] for e in done)
    assert sorted(e["worker"] for e in g.events("worker.exited")) == [0, 1]
    assert all(e["status"] == 0 for e in g.events("worker.exited"))
    (stopped,) = g.events("supervisor.stopped")
    assert stopped["status"] == 0


def test_restart_delay_doubles_within_a_minute_and_is_capped() -> None:
    policy = RestartPolicy(base_s=0.5, max_s=4.0, window_s=60.0)
    assert [policy.delay(t) for t in (0.0, 1.0, 2.0, 3.0, 4.0)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay(200.0) == 0.5  # a minute without exits: back to the first step


def test_group_status_check_names_the_missing_workers() -> None:
    assert GroupStatus(2, {"0": 10, "1": 11}).check() == "ok"
    assert GroupStatus(3, {"1": 11}).check() == "1 of 3 workers running (restarting: 0, 2)"
    assert GroupStatus(2, {"0": 10, "1": 11}, stopping=True).check() != "ok"


async def test_without_an_upstream_the_workers_share_one_emulator(tmp_path: Path) -> None:
    async with group(None, tmp_path) as g:
        # Started once, by the supervisor (no worker line), and every worker uses it.
        (emulator,) = g.events("serve.using_emulator")
        assert "worker" not in emulator
        await g.call_both_workers()
        live = g.live_on(0) + g.live_on(1)
        agents = {e["agent_id"] for e in g.events("call.started")}
        assert agents == {emulator["default_agent"]}
        await g.until("every caller hears the emulated agent", lambda: g.heard_agent(live))
        for res in await g.hang_up(live):
            assert res.outcome is Outcome.COMPLETED, res.reason
            assert res.stream is not None and res.stream.heard  # the emulated agent spoke
        g.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(g.proc.wait(), 30) == 0


async def test_workers_drain_by_themselves_when_the_supervisor_is_killed(
    platform_emulator: PlatformEmulator, tmp_path: Path, echo_agent: str
) -> None:
    async with group(platform_emulator, tmp_path, echo_agent) as g:
        await g.call_both_workers()
        live = g.live_on(0) + g.live_on(1)
        workers = [g.pid(0), g.pid(1)]
        g.proc.kill()  # (its wait() would last as long as the workers: they hold its stdout)
        # Orphaned, each worker drains: its calls go on, it takes no new one.
        await g.until(
            "both workers draining",
            lambda: {e["worker"] for e in g.events("serve.supervisor_gone")} == {0, 1},
            timeout_s=10,
            supervised=False,
        )
        assert (await g.http.get("/readyz")).status_code == 503
        assert await g.metric("bridge_active_calls") == len(live)
        for res in await g.hang_up(live):
            assert res.outcome is Outcome.COMPLETED, res.reason
            assert res.stream is not None and res.stream.ended_by == "caller"
        await g.until(
            "both workers gone",
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
            timeout_s=30,
            supervised=False,
        )


def _serve_argv(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bridge.cli", "serve", "--workers", "2", *args]


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELEVENLABS_", "TWILIO_", "BRIDGE_", "PROMETHEUS_"))
    }
    return {**env, "BRIDGE_DB": str(tmp_path / "bridge.db")}


def test_port_0_is_refused_with_workers(tmp_path: Path) -> None:
    done = subprocess.run(
        _serve_argv(tmp_path, "--port", "0"),
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "server.port" in done.stderr and "a fixed port" in done.stderr


def test_a_port_held_by_another_program_stops_the_group_with_status_2(tmp_path: Path) -> None:
    with socket.socket() as held:  # no SO_REUSEPORT: the workers cannot share it
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            _serve_argv(tmp_path, "--port", str(port)),
            env=_clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    events = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    assert any(e["event"] == "worker.refused_to_start" for e in events)
    assert not any(e["event"] == "worker.restarting" for e in events)
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
