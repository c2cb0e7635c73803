"""What a person sees: live progress while calls run, the summary table at the end.

On a TTY the progress is a ``rich`` Live panel redrawn a few times a second; otherwise
(CI, a pipe, a log file) it is one plain line per tick, so logs stay greppable.
"""

from __future__ import annotations

import time
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bridge.loadtest.model import PhaseFigures
from bridge.loadtest.stats import Summary
from bridge.loadtest.turns import describe


def _ms(s: Summary | None, field: str = "p99") -> str:
    if s is None:
        return "–"
    return f"{getattr(s, field):.1f}"


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if v is None else fmt.format(v)


class ProgressView:
    """Live panel on a TTY, plain lines otherwise; ``update`` once per tick."""

    def __init__(self, console: Console, plain_stream: IO[str] | None = None) -> None:
        self.console = console
        self.tty = console.is_terminal
        self._live: Live | None = None
        self._plain = plain_stream
        self._t0 = time.monotonic()

    def __enter__(self) -> ProgressView:
        if self.tty:
            self._live = Live(self._table(None), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(
        self,
        *,
        phase: str,
        t: float,
        active: int,
        completed: int,
        errors: int,
        p99_ms: float | None,
        bridge_cpu_percent: float | None,
    ) -> None:
        row = (phase, t, active, completed, errors, p99_ms, bridge_cpu_percent)
        if self._live is not None:
            self._live.update(self._table(row))
        else:
            line = (
                f"[{t:7.1f}s] {phase}: active={active} completed={completed} errors={errors} "
                f"p99_ms={_num(p99_ms, '{:.1f}')} bridge_cpu%={_num(bridge_cpu_percent, '{:.0f}')}"
            )
            print(line, file=self._plain or self.console.file, flush=True)

    def note(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text)
        else:
            print(text, file=self._plain or self.console.file, flush=True)

    @staticmethod
    def _table(row: tuple[str, float, int, int, int, float | None, float | None] | None) -> Table:
        table = Table(title="bridge loadtest", expand=False)
        for col in ("phase", "t (s)", "active", "completed", "errors", "p99 ms", "bridge CPU %"):
            table.add_column(col, justify="right")
        if row is not None:
            phase, t, active, completed, errors, p99, cpu = row
            table.add_row(
                phase,
                f"{t:.0f}",
                str(active),
                str(completed),
                str(errors),
                _num(p99, "{:.1f}"),
                _num(cpu, "{:.0f}"),
            )
        return table


def summary_table(phases: list[PhaseFigures]) -> Table:
    """One column per phase, one row per figure."""
    table = Table(title="bridge loadtest summary", show_lines=False)
    table.add_column("figure")
    for ph in phases:
        table.add_column(f"{ph.agent_format}\n{ph.calls_requested} calls", justify="right")

    def row(name: str, values: list[str]) -> None:
        table.add_row(name, *values)

    row("completed", [str(ph.outcomes["completed"]) for ph in phases])
    row("failed to connect", [str(ph.outcomes["failed_to_connect"]) for ph in phases])
    row("dropped mid-call", [str(ph.outcomes["dropped"]) for ph in phases])
    row("peak concurrent", [str(ph.resources.peak_concurrent_calls) for ph in phases])
    # Both ways on the caller's side are 8 kHz mu-law: 8000 bytes a second.
    row(
        "caller audio sent / heard s",
        [
            f"{ph.integrity.bytes_sent / 8000:.1f} / {ph.integrity.bytes_received / 8000:.1f}"
            for ph in phases
        ],
    )
    row(
        "webhook→TwiML p50/p99 ms",
        [f"{_ms(ph.webhook_ms, 'p50')} / {_ms(ph.webhook_ms)}" for ph in phases],
    )
    row(
        "stream→first audio p50/p99 ms",
        [f"{_ms(ph.first_audio_ms, 'p50')} / {_ms(ph.first_audio_ms)}" for ph in phases],
    )
    for f in ("p50", "p95", "p99", "max"):
        row(f"relay latency {f} ms", [_ms(ph.relay_latency_ms, f) for ph in phases])
    row(
        "barge-in→clear p50/p99 ms",
        [f"{_ms(ph.barge_in_ms, 'p50')} / {_ms(ph.barge_in_ms)}" for ph in phases],
    )
    row("caller send lag p99 ms (self-check)", [_ms(ph.send_lag_ms, "max") for ph in phases])
    row("probe frames sent", [str(ph.integrity.probe_frames_sent) for ph in phases])
    row("probe frames received", [str(ph.integrity.probe_frames_received) for ph in phases])
    row("probe frames lost", [str(ph.integrity.probe_frames_lost) for ph in phases])
    row(
        "out of order / gaps",
        [f"{ph.integrity.out_of_order} / {ph.integrity.gap_events}" for ph in phases],
    )
    row("tone SNR min dB", [_ms(ph.integrity.tone_snr_db, "min") for ph in phases])
    row(
        "bridge CPU ms / call-s",
        [_num(ph.resources.bridge_cpu_ms_per_call_second) for ph in phases],
    )
    row("bridge MiB / call", [_num(ph.resources.bridge_mib_per_call, "{:.3f}") for ph in phases])
    row("bridge peak RSS MiB", [_num(ph.resources.bridge_rss_peak_mib, "{:.0f}") for ph in phases])
    row(
        "emulator / loadgen CPU s",
        [
            f"{_num(ph.resources.emulator_cpu_s, '{:.1f}')} / {_num(ph.resources.loadgen_cpu_s, '{:.1f}')}"
            for ph in phases
        ],
    )
    row("verdict", ["pass" if ph.passed else "FAIL" for ph in phases])
    return table


def print_summary(console: Console, phases: list[PhaseFigures]) -> None:
    console.print(summary_table(phases))
    for ph in phases:
        if ph.send_lag_ms is not None and ph.send_lag_ms.max > 10:
            console.print(
                f"phase {ph.phase}: the load generator itself ran up to "
                f"{ph.send_lag_ms.max:.0f} ms late: latency figures include its delay"
            )
        for why in ph.broken:
            console.print(
                f"phase {ph.phase} ({ph.agent_format}, {ph.calls_requested} calls): {why}"
            )
        for reason, n in sorted(ph.reasons.items()):
            console.print(f"phase {ph.phase}: {n} × {reason}")
        if ph.turns:
            console.print(f"phase {ph.phase}: turn latency at the bridge: {describe(ph.turns)}")
