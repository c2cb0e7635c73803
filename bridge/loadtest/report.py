"""``report.json``: every figure, the parameters and the versions, as msgspec structs.

The timeline is built after the run from what was recorded during it: active calls from
the runner's once-a-second ticks, bridge CPU from the ``/proc`` (or ``/metrics``) samples,
and p99 relay latency per second of *send* time from the latency samples themselves.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import msgspec
import numpy as np

from bridge.loadtest.model import CallMeasurement, PhaseFigures
from bridge.loadtest.params import Params
from bridge.loadtest.procstat import ProcSample
from bridge.loadtest.stats import percentile

SCHEMA = "bridge-loadtest/1"
HISTOGRAM_EDGES_MS = tuple(float(x) for x in np.arange(0, 100.5, 1.0))


class Tick(msgspec.Struct, frozen=True):
    """The runner's state once a second."""

    t: float
    active: int
    completed: int
    errors: int


class TimelinePoint(msgspec.Struct, frozen=True):
    t: float
    active_calls: int
    completed: int
    errors: int
    p99_ms: float | None
    bridge_cpu_percent: float | None  # of one core, over the preceding interval
    bridge_rss_mib: float | None


class Histogram(msgspec.Struct, frozen=True):
    phase: int
    edges_ms: tuple[float, ...]
    counts: tuple[int, ...]
    above_ms: int  # samples beyond the last edge


class Environment(msgspec.Struct, frozen=True):
    cpus: int | None
    loadavg_start: tuple[float, float, float] | None
    loadavg_end: tuple[float, float, float] | None
    kernel: str
    started_at: str  # ISO 8601, UTC


class Report(msgspec.Struct, frozen=True):
    schema: str
    params: Params
    versions: dict[str, str]
    environment: Environment
    phases: list[PhaseFigures]
    histograms: list[Histogram]
    timeline: list[TimelinePoint]
    calls: list[CallMeasurement]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("bridge", "numpy", "websockets", "uvicorn", "starlette", "msgspec", "uvloop"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def loadavg() -> tuple[float, float, float] | None:
    try:
        a, b, c = os.getloadavg()
    except OSError:
        return None
    return (round(a, 2), round(b, 2), round(c, 2))


def histogram(phase: int, latencies_s: np.ndarray) -> Histogram:
    ms = np.asarray(latencies_s, dtype=np.float64) * 1000
    edges = np.asarray(HISTOGRAM_EDGES_MS)
    counts, _ = np.histogram(ms, bins=edges)
    return Histogram(
        phase=phase,
        edges_ms=HISTOGRAM_EDGES_MS,
        counts=tuple(int(c) for c in counts),
        above_ms=int(np.sum(ms >= edges[-1])),
    )


def timeline(
    ticks: list[Tick],
    bridge: list[ProcSample],
    sent_at: np.ndarray,
    latencies_s: np.ndarray,
) -> list[TimelinePoint]:
    """One point per tick; p99 over the frames sent since the previous tick."""
    order = np.argsort(sent_at, kind="stable")
    sent_sorted = np.asarray(sent_at)[order]
    lat_sorted = np.asarray(latencies_s)[order]
    cpu_t = np.array([s.t for s in bridge])
    out: list[TimelinePoint] = []
    prev_t = 0.0
    for tick in ticks:
        lo, hi = np.searchsorted(sent_sorted, [prev_t, tick.t])
        window = np.sort(lat_sorted[lo:hi])
        p99 = percentile(window, 99) * 1000 if window.size else None
        cpu = rss = None
        if cpu_t.size >= 2:
            i = int(np.searchsorted(cpu_t, tick.t, side="right")) - 1
            if i >= 1:
                a, b = bridge[i - 1], bridge[i]
                if b.t > a.t:
                    cpu = 100 * (b.cpu_s - a.cpu_s) / (b.t - a.t)
                rss = b.rss_bytes / (1024 * 1024)
        out.append(
            TimelinePoint(
                t=tick.t,
                active_calls=tick.active,
                completed=tick.completed,
                errors=tick.errors,
                p99_ms=p99,
                bridge_cpu_percent=cpu,
                bridge_rss_mib=rss,
            )
        )
        prev_t = tick.t
    return out


def write_json(report: Report, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "report.json"
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2))
    return path


def read_json(path: Path) -> Report:
    return msgspec.json.decode(path.read_bytes(), type=Report)
