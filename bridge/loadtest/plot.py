"""``report.png``: the latency histogram and the run's timeline, for a person to look at.

matplotlib is optional (the ``report`` extra, and a dev dependency): without it the PNG
is skipped with one clear line, everything else still runs.  The Agg backend is chosen
explicitly so no display is ever needed.
"""

from __future__ import annotations

from pathlib import Path

from bridge.loadtest.report import Report


def write_png(report: Report, directory: Path) -> tuple[Path | None, str | None]:
    """``(path, None)`` when written, ``(None, why)`` when skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "matplotlib is not installed: report.png skipped (install bridge[report])"

    fig, axes = plt.subplots(4, 1, figsize=(11, 12), constrained_layout=True)
    hist_ax, act_ax, p99_ax, cpu_ax = axes
    names = {ph.phase: f"{ph.agent_format}, {ph.calls_requested} calls" for ph in report.phases}
    for h in report.histograms:
        if sum(h.counts) == 0:
            continue
        centers = [(a + b) / 2 for a, b in zip(h.edges_ms[:-1], h.edges_ms[1:], strict=True)]
        hist_ax.step(centers, h.counts, where="mid", label=names.get(h.phase, str(h.phase)))
    hist_ax.set_title("Relay latency (caller sends a frame → hears it back through the bridge)")
    hist_ax.set_xlabel("ms")
    hist_ax.set_ylabel("frames")
    hist_ax.set_yscale("log")
    if any(sum(h.counts) for h in report.histograms):
        hist_ax.legend()

    tl = report.timeline
    t = [p.t for p in tl]
    act_ax.plot(t, [p.active_calls for p in tl], label="active")
    act_ax.plot(t, [p.errors for p in tl], label="errors (cumulative)", color="tab:red")
    act_ax.set_ylabel("calls")
    act_ax.legend(loc="upper left")
    p99_ax.plot(
        t, [p.p99_ms if p.p99_ms is not None else float("nan") for p in tl], color="tab:orange"
    )
    p99_ax.set_ylabel("relay p99 per second (ms)")
    cpu_ax.plot(
        t,
        [p.bridge_cpu_percent if p.bridge_cpu_percent is not None else float("nan") for p in tl],
        color="tab:green",
    )
    cpu_ax.set_ylabel("bridge CPU (% of a core)")
    cpu_ax.set_xlabel("seconds since start")
    for ph in report.phases:
        for ax in (act_ax, p99_ax, cpu_ax):
            ax.axvspan(*ph.window_s, alpha=0.06, color="gray")
    for ax in (act_ax, p99_ax, cpu_ax):
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"bridge loadtest: {report.params.scenario}, started {report.environment.started_at}"
    )
    path = directory / "report.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path, None
