"""`bridge loadtest` across worker processes and across instances (short real runs).

* ``--workers 2``: the stack it starts is ``bridge serve --workers 2``; the bridge's CPU
  and memory are the supervisor's and its workers' together (``/proc``);
* ``--target A,B``: two ``bridge serve`` processes; the calls alternate between them,
  which each instance's own call counter shows.

As in test_command.py: assertions on what happened, never on how fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bridge.cli import main
from bridge.errors import InputError
from bridge.loadtest.params import Params
from bridge.loadtest.procstat import ProcSample, read_group, read_proc, summed
from bridge.loadtest.stack import Target, free_port

NUMBER = "+15550100100"
TOKEN = "spread-test-token"


def _run(argv: list[str], out: Path) -> dict[str, object]:
    rc = main([*argv, "--report", str(out), "--max-p99-ms", "1e9", "--max-cpu-ms", "1e9"])
    report: dict[str, object] = json.loads((out / "report.json").read_text())
    assert rc == 0, report
    return report


def test_workers_2_runs_the_stack_with_a_worker_group(tmp_path: Path) -> None:
    out = tmp_path / "report"
    report = _run(["loadtest", "--workers", "2", "--calls", "4", "--duration", "3s"], out)
    (phase,) = report["phases"]  # type: ignore[misc]
    assert phase["outcomes"]["completed"] == 4
    assert phase["integrity"]["probe_frames_lost"] == 0
    assert phase["resources"]["bridge_cpu_s"] > 0  # supervisor + workers, from /proc
    log = (out / "stack" / "bridge.log").read_text()
    listening = [json.loads(x) for x in log.splitlines() if '"serve.listening"' in x]
    assert sorted(e["worker"] for e in listening) == [0, 1]


def _serve(tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(
        "[server]\n"
        f'port = {port}\npublic_url = "http://127.0.0.1:{port}"\n'
        f'[twilio]\nauth_token = "{TOKEN}"\napi_base_url = "http://127.0.0.1:9"\n'
        f'[store]\ndb = "{tmp_path / name}.db"\n'
        '[log]\nlevel = "warning"\n'
        f'[[routes]]\nnumber = "{NUMBER}"\nagent_id = "agent_emulator_loopback"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "TWILIO_"))}
    with open(tmp_path / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "--config", str(cfg), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return proc, f"http://127.0.0.1:{port}", cfg


def _calls_ended(url: str) -> float:
    page = httpx.get(url + "/metrics", timeout=5).text
    return sum(
        float(line.split()[1])
        for line in page.splitlines()
        if line.startswith("bridge_calls_total")
    )


def test_several_targets_get_the_calls_in_turn(tmp_path: Path) -> None:
    servers = [_serve(tmp_path, name) for name in ("a", "b")]
    try:
        for proc, url, _ in servers:
            deadline = time.monotonic() + 60  # two start at once on a shared machine
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        (_, a, cfg), (_, b, _) = servers
        argv = [
            "--config", str(cfg),
            "loadtest",
            "--target", a,
            "--target", b,
            "--to", NUMBER,
            "--calls", "4",
            "--ramp", "0.5s",
            "--duration", "3s",
        ]  # fmt: skip
        report = _run(argv, tmp_path / "report")
        assert [_calls_ended(a), _calls_ended(b)] == [2, 2]
    finally:
        for proc, _, _ in servers:
            proc.terminate()
            proc.wait(15)
    (phase,) = report["phases"]  # type: ignore[misc]
    assert phase["outcomes"]["completed"] == 4
    assert phase["resources"]["bridge_cpu_s"] > 0  # both instances' /metrics, added


def test_targets_are_spread_in_turn_and_summed() -> None:
    t = Target("http://a", None, {}, bridge_urls=("http://a", "http://b"))
    assert [t.url_for(i) for i in range(4)] == ["http://a", "http://b"] * 2
    assert t.metrics_urls() == ("http://a/metrics", "http://b/metrics")
    one = Target("http://a", None, {}, metrics_url="http://a/metrics")
    assert one.url_for(7) == "http://a" and one.metrics_urls() == ("http://a/metrics",)
    s = summed([ProcSample(1.0, 2.0, 10, active_calls=3), ProcSample(1.0, 0.5, 5)], t=2.0)
    assert (s.t, s.cpu_s, s.rss_bytes, s.active_calls) == (2.0, 2.5, 15, 3)


def test_workers_only_for_the_bridge_started_here() -> None:
    base = {"calls": (1,), "formats": ("pcm_16000",), "ramp_s": 1, "duration_s": 1}
    kw = {**base, "scenario": "loopback", "report_dir": "r", "numbers": ("+15550100100",)}
    with pytest.raises(InputError, match="--workers"):
        Params(target="http://127.0.0.1:1", workers=2, **kw)  # type: ignore[arg-type]
    p = Params(target="http://127.0.0.1:1", more_targets=("http://127.0.0.1:2",), **kw)  # type: ignore[arg-type]
    assert p.targets() == ("http://127.0.0.1:1", "http://127.0.0.1:2")


def test_the_same_target_twice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["loadtest", "--target", "http://127.0.0.1:9,http://127.0.0.1:9/", "--to", NUMBER]
    assert main(argv) == 2
    assert "twice" in capsys.readouterr().err


def test_a_group_reading_adds_the_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        me = os.getpid()
        alone, group = read_proc(me, 0.0), read_group(me, 0.0)
        child_rss = read_proc(child.pid, 0.0).rss_bytes
        assert group.rss_bytes >= alone.rss_bytes + child_rss * 0.5  # both, as they move
        assert group.cpu_s >= alone.cpu_s
    finally:
        child.kill()
        child.wait()
