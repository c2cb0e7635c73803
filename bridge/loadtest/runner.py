"""Orchestration: phases of calls ramped onto a target, measured, reported.

One event loop runs every synthetic call (the caller from ``bridge.emulator.twilio``),
a sampler of the bridge's CPU/RSS and a ticker for the live view.  The caller's own
timestamps are the measurement, so the loop must stay responsive: nothing heavy runs
while calls are live.  Probes are generated before a phase starts; the echo aligner runs
live only within a small time budget a second (enough for the "current p99" line) and
finishes each call after the phase, when no call is running any more.

Bounds: each phase has a deadline (``Params.phase_deadline_s``); a call still running
then is cancelled and counted as dropped ("cut at the phase deadline").  Calls only go to
the target given (loopback unless named explicitly) or to the stack started here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import os
import platform
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import numpy as np
from rich.console import Console

from bridge.emulator.twilio.caller import CallSpec, SyntheticCall
from bridge.emulator.twilio.records import CallResult
from bridge.errors import InputError
from bridge.http import INBOUND_PATH, STATUS_PATH
from bridge.loadtest.display import ProgressView, print_summary
from bridge.loadtest.measure import CallMeter, classify
from bridge.loadtest.model import CallMeasurement, CallOutcome, PhaseFigures, aggregate
from bridge.loadtest.params import Params
from bridge.loadtest.plot import write_png
from bridge.loadtest.procstat import (
    ProcSample,
    fetch_metrics,
    read_group,
    read_proc,
    summed,
    usage,
)
from bridge.loadtest.report import (
    SCHEMA,
    Environment,
    Report,
    Tick,
    histogram,
    loadavg,
    timeline,
    versions,
    write_json,
)
from bridge.loadtest.scenario import PlannedCall, build_plan, scenario_for
from bridge.loadtest.stack import Target, started_stack
from bridge.loadtest.stats import percentile
from bridge.loadtest.turns import Buckets, fetch_buckets
from bridge.loadtest.turns import figures as turn_figures

TICK_S = 0.5
LIVE_BUDGET_S = 0.003  # aligner work per second while calls run
SETTLE_S = 2.0  # between phases
CALLER_NUMBER = "+15550009999"


@dataclass
class _Live:
    meter: CallMeter
    call: SyntheticCall


@dataclass
class _Phase:
    index: int
    fmt: str
    calls: int
    live: dict[int, _Live] = field(default_factory=dict)
    done: list[tuple[CallMeter, CallResult, str | None]] = field(default_factory=list)
    errors: int = 0
    recent: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=5000))


class Sampler:
    """CPU/RSS of the bridge (``/proc`` or ``/metrics``), the emulator and ourselves."""

    def __init__(self, target: Target, run_t0: float, http: httpx.AsyncClient) -> None:
        self.target = target
        self.run_t0 = run_t0
        self.http = http
        self.bridge: list[ProcSample] = []
        self.emulator: list[ProcSample] = []
        self.loadgen: list[ProcSample] = []
        self.problems: list[str] = []
        self._metrics_ok = bool(target.metrics_urls())

    async def sample(self) -> None:
        t = time.monotonic() - self.run_t0
        tgt = self.target
        for pid, out, name in (
            (tgt.bridge_pid, self.bridge, "bridge"),
            (tgt.emulator_pid, self.emulator, "emulator"),
            (os.getpid(), self.loadgen, "loadgen"),
        ):
            if pid is None:
                continue
            try:
                group = name == "bridge" and tgt.bridge_group
                out.append(read_group(pid, t) if group else read_proc(pid, t))
            except (OSError, InputError) as e:
                self._problem(f"{name} /proc/{pid} unreadable: {e}")
        if tgt.bridge_pid is None and self._metrics_ok:
            urls = tgt.metrics_urls()
            try:
                each = [await fetch_metrics(self.http, url, t) for url in urls]
            except (httpx.HTTPError, InputError) as e:
                self._metrics_ok = False
                self._problem(f"bridge CPU/RSS unavailable from {', '.join(urls)}: {e}")
            else:
                self.bridge.append(summed(each, t))

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    async def run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(TICK_S)


def _now(run_t0: float) -> float:
    return time.monotonic() - run_t0


class Runner:
    def __init__(self, params: Params, console: Console) -> None:
        self.params = params
        self.console = console
        self.run_t0 = time.monotonic()
        self.ticks: list[Tick] = []
        self.completed = 0
        self.errors = 0

    # ------------------------------------------------------------------ calls

    async def _call(
        self,
        ph: _Phase,
        plan: PlannedCall,
        at: float,
        deadline: float,
        target: Target,
        http: httpx.AsyncClient,
    ) -> None:
        await asyncio.sleep(max(0.0, at - _now(self.run_t0)))
        number = target.numbers[(plan.scenario, plan.agent_format)]
        spec = CallSpec(
            to=number,
            from_=CALLER_NUMBER,
            url=target.url_for(plan.index) + INBOUND_PATH,
            auth_token=target.auth_token,
            script=plan.script,
            speed=self.params.speed,
            status_callback=target.url_for(plan.index) + STATUS_PATH,
            stream_open_timeout_s=self.params.setup_timeout_s,
        )
        call = SyntheticCall(spec, http=http)
        meter = CallMeter(plan, ph.index, self.run_t0)
        ph.live[plan.index] = _Live(meter, call)
        cut: str | None = None
        try:
            await asyncio.wait_for(call.run(), timeout=max(0.1, deadline - _now(self.run_t0)))
        except TimeoutError:
            cut = "cut at the phase deadline"
        finally:
            del ph.live[plan.index]
        ph.done.append((meter, call.result, cut))
        outcome, _ = classify(call.result, call.result.stream, plan.scenario, True)
        if cut is None and outcome is CallOutcome.COMPLETED:
            self.completed += 1
        else:
            self.errors += 1
            ph.errors += 1

    # ------------------------------------------------------------------ live view

    def _live_step(self, ph: _Phase, order: deque[int]) -> None:
        """Advance some live aligners within the budget; rotate so all get a turn."""
        start = time.perf_counter()
        if not order:
            order.extend(ph.live)
        while order and time.perf_counter() - start < LIVE_BUDGET_S:
            live = ph.live.get(order.popleft())
            if live is None or live.meter.aligner is None:
                continue
            al = live.meter.aligner
            before = len(al.latencies)
            live.meter.poll(live.call.result)
            ph.recent.extend(zip(al.latency_sent_at[before:], al.latencies[before:], strict=True))

    def _current_p99_ms(self, ph: _Phase, now: float) -> float | None:
        """p99 of the frames timed in the last 5 s (once a second, at most ~5000 values)."""
        window = np.sort(np.fromiter((lat for t, lat in ph.recent if t >= now - 5.0), float))
        return percentile(window, 99) * 1000 if window.size else None

    async def _ticker(self, ph: _Phase, view: ProgressView, samples: Sampler) -> None:
        order: deque[int] = deque()
        last_tick = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            now = _now(self.run_t0)
            cpu = None
            b = samples.bridge
            if len(b) >= 2 and b[-1].t > b[-2].t:
                cpu = 100 * (b[-1].cpu_s - b[-2].cpu_s) / (b[-1].t - b[-2].t)
            if now - last_tick >= 1.0:
                last_tick = now
                # Once a second, with the line it feeds: the aligner's cost per call is
                # mostly per step, so fewer, larger steps cost the generator less.
                self._live_step(ph, order)
                self.ticks.append(Tick(now, len(ph.live), self.completed, self.errors))
                view.update(
                    phase=f"{ph.fmt}×{ph.calls}",
                    t=now,
                    active=len(ph.live),
                    completed=self.completed,
                    errors=self.errors,
                    p99_ms=self._current_p99_ms(ph, now),
                    bridge_cpu_percent=cpu,
                )

    # ------------------------------------------------------------------ phases

    async def _phase(
        self,
        index: int,
        calls: int,
        fmt: str,
        target: Target,
        http: httpx.AsyncClient,
        samples: Sampler,
        view: ProgressView,
        first_index: int,
    ) -> PhaseFigures:
        p = self.params
        plans = [
            build_plan(
                first_index + i,
                p.scenario,
                fmt,
                duration_s=p.duration_s,
                seed=p.seed,
                tone_s=p.tone_s,
                tail_s=p.tail_s,
            )
            for i in range(calls)
        ]
        ph = _Phase(index, fmt, calls)
        await samples.sample()
        turns_before = await self._turn_buckets(target, http, view)
        t0 = _now(self.run_t0)
        view.note(f"phase {index}: {calls} calls, agent format {fmt}, scenario {p.scenario}")
        deadline = t0 + p.phase_deadline_s()
        spacing = p.ramp_s / calls
        ticker = asyncio.create_task(self._ticker(ph, view, samples))
        # The calls' recordings are hundreds of thousands of small objects: each of the
        # cyclic collector's full passes over them stalled every call at once (tens of
        # ms), and the generator's lateness showed up as bridge latency.  They hold no
        # cycles worth collecting mid-phase; collection resumes after the phase.
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            async with asyncio.TaskGroup() as tg:
                for i, plan in enumerate(plans):
                    tg.create_task(self._call(ph, plan, t0 + i * spacing, deadline, target, http))
        finally:
            gc.enable()
            gc.unfreeze()
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        t1 = _now(self.run_t0)
        await samples.sample()
        turns_after = await self._turn_buckets(target, http, view)
        # Calls are over: now the heavy part of the analysis.
        records: list[CallMeasurement] = []
        lat_parts: list[np.ndarray] = []
        sent_parts: list[np.ndarray] = []
        for meter, result, cut in sorted(ph.done, key=lambda d: d[0].plan.index):
            records.append(meter.finish(result, cut))
            if meter.aligner is not None:
                lat_parts.append(np.asarray(meter.aligner.latencies, dtype=np.float64))
                sent_parts.append(np.asarray(meter.aligner.latency_sent_at, dtype=np.float64))
        self._records.extend(records)
        lat = np.concatenate(lat_parts) if lat_parts else np.zeros(0)
        sent = np.concatenate(sent_parts) if sent_parts else np.zeros(0)
        self._latencies.append((index, lat, sent))
        figures = aggregate(
            index,
            fmt,
            calls,
            records,
            lat,
            (t0, t1),
            bridge=usage(samples.bridge, t0, t1),
            emulator=usage(samples.emulator, t0, t1),
            loadgen=usage(samples.loadgen, t0, t1),
            criteria=p.criteria,
        )
        if turns_before is not None and turns_after is not None:
            figures = msgspec.structs.replace(
                figures, turns=turn_figures(turns_before, turns_after)
            )
        verdict = "passed" if figures.passed else "FAILED: " + "; ".join(figures.broken)
        view.note(f"phase {index} done in {t1 - t0:.1f}s: {verdict}")
        return figures

    async def _turn_buckets(
        self, target: Target, http: httpx.AsyncClient, view: ProgressView
    ) -> Buckets | None:
        """The bridges' turn-latency histograms now (None, noted, when unreadable)."""
        urls = target.metrics_urls() or (target.bridge_url + "/metrics",)
        try:
            return await fetch_buckets(http, urls)
        except (httpx.HTTPError, InputError) as e:
            view.note(f"per-turn latency unavailable from {', '.join(urls)}: {e}")
            return None

    async def run(self, target_cm: contextlib.AbstractAsyncContextManager[Target]) -> Report:
        p = self.params
        self._records: list[CallMeasurement] = []
        self._latencies: list[tuple[int, np.ndarray, np.ndarray]] = []
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        load_start = loadavg()
        phases: list[PhaseFigures] = []
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with (
            httpx.AsyncClient(trust_env=False, timeout=p.setup_timeout_s, limits=limits) as http,
            target_cm as target,
        ):
            samples = Sampler(target, self.run_t0, http)
            sampler = asyncio.create_task(samples.run())
            try:
                with ProgressView(self.console) as view:
                    first = 0
                    for index, (calls, fmt) in enumerate(p.phases()):
                        if index:
                            await asyncio.sleep(SETTLE_S)
                        figures = await self._phase(
                            index, calls, fmt, target, http, samples, view, first
                        )
                        first += calls
                        phases.append(figures)
                        if p.stop_on_failure and not figures.passed:
                            view.note("stopping: the phase broke its criteria (--stop-on-failure)")
                            break
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
        for problem in samples.problems:
            self.console.print(f"note: {problem}")
        all_lat = [lat for _, lat, _ in self._latencies]
        all_sent = [sent for _, _, sent in self._latencies]
        return Report(
            schema=SCHEMA,
            params=p,
            versions=versions(),
            environment=Environment(
                cpus=os.cpu_count(),
                loadavg_start=load_start,
                loadavg_end=loadavg(),
                kernel=platform.release(),
                started_at=started,
            ),
            phases=phases,
            histograms=[histogram(i, lat) for i, lat, _ in self._latencies],
            timeline=timeline(
                self.ticks,
                samples.bridge,
                np.concatenate(all_sent) if all_sent else np.zeros(0),
                np.concatenate(all_lat) if all_lat else np.zeros(0),
            ),
            calls=self._records,
        )


def needed_agents(params: Params) -> list[tuple[str, str]]:
    kinds = sorted({scenario_for(i, params.scenario) for i in range(5)})
    return [(k, f) for k in kinds for f in params.formats]


@contextlib.asynccontextmanager
async def remote_target(params: Params, auth_token: str | None) -> AsyncIterator[Target]:
    assert params.target is not None
    kinds = {scenario_for(i, params.scenario) for i in range(5)}
    if len(kinds) > 1:
        raise InputError("--scenario", "mixed needs one agent per behaviour: not with --target")
    (kind,) = kinds
    numbers = {(kind, f): n for f, n in zip(params.formats, params.numbers, strict=True)}
    yield Target(
        bridge_url=params.target,
        auth_token=auth_token,
        numbers=numbers,
        metrics_url=params.target + "/metrics",
        bridge_urls=params.targets() if params.more_targets else (),
    )


async def run_loadtest(params: Params, console: Console, auth_token: str | None = None) -> Report:
    """Run every phase, write ``report.json`` and ``report.png``, print the summary."""
    out = Path(params.report_dir)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any call runs
    runner = Runner(params, console)
    if params.target is None:

        @contextlib.asynccontextmanager
        async def own() -> AsyncIterator[Target]:
            # Every call of the run may be live at once: the bridge must not cap below it.
            max_calls = sum(params.calls) * len(params.formats)
            async with started_stack(
                out, needed_agents(params), max_calls, params.workers, params.record
            ) as (
                target,
                children,
            ):
                for child in children:
                    console.print(
                        f"started {child.name} pid {child.pid} at {child.url} (log {child.log})"
                    )
                yield target

        report = await runner.run(own())
    else:
        report = await runner.run(remote_target(params, auth_token))
    path = write_json(report, out)
    png, why = write_png(report, out)
    print_summary(console, report.phases)
    env = report.environment
    console.print(
        f"machine: {env.cpus} CPUs, load average {env.loadavg_start} at start, "
        f"{env.loadavg_end} at end (other work on the machine skews every figure)"
    )
    console.print(f"report: {path}")
    console.print(f"plot: {png}" if png else why or "")
    return report
