"""Capacity with worker processes and with instances: the highest passing load step.

One run, three set-ups, each ramped with ``bridge loadtest`` (pcm_16000, loopback
scenario) step by step until a step breaks the criteria (0 lost frames, 0 failed calls,
relay p99 <= 20 ms; the CPU criterion is not applied):

1. ``bridge serve`` with 1 worker (the stack ``bridge loadtest`` starts itself);
2. the same with ``--workers 2``;
3. (``--postgres``) two ``bridge serve`` instances on one throwaway PostgreSQL database,
   the load spread over both (``--target A --target B``).

Printed per set-up: the highest passing step, its relay p99, the bridge's CPU per
call-second (summed over workers / instances), and how much of a core the load
generator itself used at that step (near 1.0 means the generator, not the bridge, may be
the limit).  Then the 2-worker / 1-worker ratio.

    uv run python bench/workers.py                       # 1 and 2 workers
    uv run python bench/workers.py --postgres            # and two instances on PostgreSQL
    uv run python bench/workers.py --calls 2,4 --duration 3s --ramp 1s --postgres  # smoke

Run on a quiet machine: the generator, the emulator and the bridge share its cores, and
anything else running skews every figure.  Reports go to ``--out`` (one directory per
set-up, with the children's logs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bridge.loadtest.stack import bridge_config, free_port

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
FORMAT = "pcm_16000"
NUMBER = "+15552000001"  # routed to the emulator's seeded loopback agent (set-up 3)
LOOPBACK_AGENT = "agent_emulator_loopback"
CLI = [sys.executable, "-m", "bridge.cli"]


@dataclass(frozen=True)
class Outcome:
    name: str
    steps: list[tuple[int, bool, float | None]]  # calls, passed, relay p99 ms
    best: int | None  # highest passing step
    p99_ms: float | None
    cpu_ms_per_call_s: float | None
    loadgen_cores: float | None  # generator CPU / phase wall time, at the best step
    rss_peak_mib: float | None


def _loadtest(before: list[str], opts: list[str], report: Path) -> Outcome:
    """``bridge [before…] loadtest [opts…]``; the figures of its report."""
    cmd = [*CLI, *before, "loadtest", *opts, "--report", str(report)]
    print("$ bridge", " ".join(cmd[len(CLI) :]), flush=True)
    done = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True)
    if not (report / "report.json").exists():
        sys.exit(f"bridge loadtest wrote no report (status {done.returncode}):\n{done.stdout}")
    data = json.loads((report / "report.json").read_text())
    steps, best = [], None
    for ph in data["phases"]:
        p99 = (ph.get("relay_latency_ms") or {}).get("p99")
        steps.append((ph["calls_requested"], ph["passed"], p99))
        if ph["passed"]:
            best = ph
    if best is None:
        return Outcome(report.name, steps, None, None, None, None, None)
    res = best["resources"]
    wall = best["window_s"][1] - best["window_s"][0]
    return Outcome(
        name=report.name,
        steps=steps,
        best=best["calls_requested"],
        p99_ms=(best.get("relay_latency_ms") or {}).get("p99"),
        cpu_ms_per_call_s=res["bridge_cpu_ms_per_call_second"],
        loadgen_cores=res["loadgen_cpu_s"] / wall if res["loadgen_cpu_s"] and wall else None,
        rss_peak_mib=res["bridge_rss_peak_mib"],
    )


@contextlib.contextmanager
def _throwaway_db() -> Iterator[str]:
    name = f"bench_workers_{secrets.token_hex(4)}"
    subprocess.run(["psql", PG_ADMIN, "-qc", f"CREATE DATABASE {name}"], check=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        subprocess.run(
            ["psql", PG_ADMIN, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
            check=False,
        )


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{url}: exited with {proc.returncode}; see {log}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.2)
    sys.exit(f"{url} did not answer within 60 s; see {log}")


def _two_instances_on_postgres(out: Path, common: list[str], max_calls: int) -> Outcome:
    """Emulator + two `bridge serve` on one PostgreSQL database, the load over both."""
    run = out / "postgres-2-instances"
    stack = run / "stack"
    stack.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "TWILIO_"))}
    env |= {"PYTHONUNBUFFERED": "1", "BRIDGE_MAX_CONCURRENT_CALLS": str(max_calls)}
    with _throwaway_db() as dsn:
        try:
            key, token = secrets.token_hex(16), secrets.token_hex(16)
            emu_port = free_port()
            emu_url = f"http://127.0.0.1:{emu_port}"
            with open(stack / "emulator.log", "wb") as log:
                emu_cmd = ["emulator", "--port", str(emu_port), "--api-key", key]
                procs.append(subprocess.Popen([*CLI, *emu_cmd], stdout=log, stderr=log, env=env))
            _wait(emu_url + "/v1/convai/agents", procs[-1], stack / "emulator.log")
            urls, configs = [], []
            for name in ("a", "b"):
                port = free_port()
                cfg = stack / f"bridge-{name}.toml"
                unused = stack / "unused.db"  # BRIDGE_DB (the shared database) wins over it
                routes = {NUMBER: LOOPBACK_AGENT}
                cfg.write_text(bridge_config(port, emu_url, key, token, unused, routes))
                log_path = stack / f"bridge-{name}.log"
                with open(log_path, "wb") as log:
                    instance = {"BRIDGE_INSTANCE_ID": f"bench-{name}", "BRIDGE_DB": dsn}
                    procs.append(
                        subprocess.Popen(
                            [*CLI, "--config", str(cfg), "serve"],
                            stdout=log,
                            stderr=log,
                            env=env | instance,
                        )
                    )
                urls.append(f"http://127.0.0.1:{port}")
                configs.append(cfg)
                _wait(urls[-1] + "/healthz", procs[-1], log_path)
            opts = [*common, "--target", ",".join(urls), "--to", NUMBER]
            return _loadtest(["--config", str(configs[0])], opts, run)
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()


def _print(outcomes: list[Outcome]) -> None:
    print()
    head = f"{'set-up':<22} {'steps (calls: pass/FAIL p99 ms)':<52} {'best':>5} {'p99':>6}"
    print(head + f" {'CPU ms/call-s':>13} {'loadgen cores':>13} {'RSS MiB':>8}")
    for o in outcomes:
        steps = " ".join(
            f"{n}:{'ok' if ok else 'FAIL'}{'' if p is None else f'/{p:.1f}'}"
            for n, ok, p in o.steps
        )

        def fmt(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        print(
            f"{o.name:<22} {steps:<52} {fmt(o.best, 'd'):>5} {fmt(o.p99_ms, '.1f'):>6}"
            f" {fmt(o.cpu_ms_per_call_s, '.2f'):>13} {fmt(o.loadgen_cores, '.2f'):>13}"
            f" {fmt(o.rss_peak_mib, '.0f'):>8}"
        )
    by = {o.name: o for o in outcomes}
    one, two = by.get("workers-1"), by.get("workers-2")
    if one and two and one.best and two.best:
        print(f"\n2 workers / 1 worker, highest passing step: {two.best / one.best:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", default="60,80,100,120,140,160,180,200", help="load steps")
    ap.add_argument("--duration", default="20s", help="each call's length")
    ap.add_argument("--ramp", default="10s", help="time over which a step's calls start")
    ap.add_argument("--out", default="bench-workers", help="report directories go here")
    ap.add_argument(
        "--postgres", action="store_true", help="also two instances on PostgreSQL (127.0.0.1)"
    )
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    common = [
        *("--calls", args.calls, "--duration", args.duration, "--ramp", args.ramp),
        *("--agent-format", FORMAT, "--scenario", "loopback"),
        *("--max-cpu-ms", "1e9", "--stop-on-failure"),
    ]
    outcomes = [_loadtest([], [*common, "--workers", str(n)], out / f"workers-{n}") for n in (1, 2)]
    if args.postgres:
        max_calls = max(int(c) for c in args.calls.split(","))
        outcomes.append(_two_instances_on_postgres(out, common, max_calls))
    _print(outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
