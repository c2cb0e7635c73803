"""CPU time and memory of a process: ``/proc`` when we started it, ``/metrics`` when remote.

Parsers are pure (text in, numbers out); :func:`read_proc` and :func:`fetch_metrics` are
the only I/O.  CPU is user + system time of the process itself (threads included),
RSS the resident set now and its high-water mark (``VmHWM``, what "peak RSS" means on
Linux).  The remote path reads the standard ``process_cpu_seconds_total`` and
``process_resident_memory_bytes`` samples of a Prometheus page, which carry no peak, so
the sampler's own maximum stands in for it.
"""

from __future__ import annotations

import os

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from bridge.errors import InputError

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ProcSample(msgspec.Struct, frozen=True):
    """One reading: ``t`` on the run's monotonic clock, CPU seconds so far, bytes."""

    t: float
    cpu_s: float
    rss_bytes: int
    hwm_bytes: int | None = None
    active_calls: float | None = None  # from /metrics only


def parse_stat(text: str, clk_tck: int = CLK_TCK) -> float:
    """User + system CPU seconds from the text of ``/proc/<pid>/stat``.

    The command name (field 2) is in parentheses and may itself contain spaces or
    parentheses, so fields are counted from the *last* ``)``.
    """
    end = text.rfind(")")
    if end < 0:
        raise InputError("/proc/<pid>/stat", "no ')' after the command name")
    rest = text[end + 1 :].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    if len(rest) < 13:
        raise InputError("/proc/<pid>/stat", f"expected at least 15 fields, got {len(rest) + 2}")
    try:
        utime, stime = int(rest[11]), int(rest[12])
    except ValueError:
        raise InputError("/proc/<pid>/stat", "utime/stime are not integers") from None
    return (utime + stime) / clk_tck


def parse_status(text: str) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` in bytes from the text of ``/proc/<pid>/status``."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            parts = value.split()
            if len(parts) != 2 or parts[1] != "kB" or not parts[0].isdigit():
                raise InputError(f"/proc/<pid>/status {key}", f"expected '<n> kB', got {value!r}")
            found[key] = int(parts[0]) * 1024
    if "VmRSS" not in found or "VmHWM" not in found:
        raise InputError("/proc/<pid>/status", "VmRSS/VmHWM missing (process gone or a zombie?)")
    return found["VmRSS"], found["VmHWM"]


def read_proc(pid: int, t: float) -> ProcSample:
    """Read ``/proc/<pid>`` now; ``OSError`` if the process is gone."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        cpu = parse_stat(f.read())
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        rss, hwm = parse_status(f.read())
    return ProcSample(t=t, cpu_s=cpu, rss_bytes=rss, hwm_bytes=hwm)


def read_group(pid: int, t: float) -> ProcSample:
    """``pid`` and its child processes as one (``bridge serve --workers N``: the supervisor
    and its workers): CPU and RSS added; ``OSError`` if ``pid`` is gone.  Read from
    ``/proc`` rather than the group's ``/metrics``: rendering the multiprocess page runs
    in a worker's event loop and would add to the latency being measured."""
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
        children = [int(c) for c in f.read().split()]
    samples = [read_proc(pid, t)]
    for child in children:
        try:
            samples.append(read_proc(child, t))
        except (OSError, InputError):
            continue  # a worker exiting right now: the next reading has its successor
    return ProcSample(
        t=t,
        cpu_s=sum(s.cpu_s for s in samples),
        rss_bytes=sum(s.rss_bytes for s in samples),
        hwm_bytes=sum(s.hwm_bytes or 0 for s in samples),
    )


def parse_metrics(text: str, t: float) -> ProcSample:
    """CPU seconds, RSS and active calls from a Prometheus exposition page."""
    values: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in (
                    "process_cpu_seconds_total",
                    "process_resident_memory_bytes",
                    "bridge_active_calls",
                ):
                    values[sample.name] = sample.value
    except ValueError as e:
        raise InputError("/metrics", f"not a Prometheus text page: {e}") from None
    if "process_cpu_seconds_total" not in values:
        raise InputError(
            "/metrics",
            "no process_cpu_seconds_total sample (the bridge's registry has no process collector)",
        )
    return ProcSample(
        t=t,
        cpu_s=values["process_cpu_seconds_total"],
        rss_bytes=int(values.get("process_resident_memory_bytes", 0)),
        active_calls=values.get("bridge_active_calls"),
    )


def summed(samples: list[ProcSample], t: float) -> ProcSample:
    """Several instances' readings as one (CPU, RSS and active calls added)."""
    calls = [s.active_calls for s in samples if s.active_calls is not None]
    return ProcSample(
        t=t,
        cpu_s=sum(s.cpu_s for s in samples),
        rss_bytes=sum(s.rss_bytes for s in samples),
        active_calls=sum(calls) if calls else None,
    )


async def fetch_metrics(client: httpx.AsyncClient, url: str, t: float) -> ProcSample:
    resp = await client.get(url)
    resp.raise_for_status()
    return parse_metrics(resp.text, t)


class Usage(msgspec.Struct, frozen=True):
    """CPU and memory of one process over the measured window."""

    cpu_s: float  # CPU seconds spent inside the window
    rss_start_bytes: int
    rss_peak_bytes: int  # VmHWM at the end when known, else the sampled maximum
    samples: int


def usage(
    samples: list[ProcSample], t0: float | None = None, t1: float | None = None
) -> Usage | None:
    """CPU spent between the first and last sample within ``[t0, t1]``; peak RSS."""
    window = [s for s in samples if (t0 is None or s.t >= t0) and (t1 is None or s.t <= t1)]
    if len(window) < 2:
        return None
    peak = max(s.rss_bytes for s in window)
    hwm = window[-1].hwm_bytes
    if hwm is not None:
        peak = max(peak, hwm)
    return Usage(
        cpu_s=window[-1].cpu_s - window[0].cpu_s,
        rss_start_bytes=window[0].rss_bytes,
        rss_peak_bytes=peak,
        samples=len(window),
    )
