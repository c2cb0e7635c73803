from __future__ import annotations

import numpy as np
from rich.console import Console

from bridge.loadtest.display import ProgressView, print_summary
from bridge.loadtest.model import Criteria, aggregate
from bridge.loadtest.params import Params
from bridge.loadtest.plot import write_png
from bridge.loadtest.procstat import ProcSample, Usage
from bridge.loadtest.report import (
    Environment,
    Report,
    Tick,
    histogram,
    read_json,
    timeline,
    versions,
    write_json,
)

from .test_model import _rec


def _report() -> Report:
    lat = np.array([0.004, 0.005, 0.006, 0.150])
    sent_at = np.array([0.5, 0.7, 1.5, 2.5])
    bridge = [ProcSample(t, 0.1 * t, 50 << 20, 60 << 20) for t in (0.0, 1.0, 2.0, 3.0)]
    ph = aggregate(
        0,
        "ulaw_8000",
        2,
        [_rec(0), _rec(1)],
        lat,
        (0.0, 3.0),
        bridge=Usage(0.3, 50 << 20, 60 << 20, 4),
        emulator=None,
        loadgen=None,
        criteria=Criteria(),
    )
    ticks = [Tick(1.0, 2, 0, 0), Tick(2.0, 2, 0, 0), Tick(3.0, 0, 2, 0)]
    params = Params(
        target=None,
        calls=(2,),
        formats=("ulaw_8000",),
        ramp_s=0.0,
        duration_s=3.0,
        scenario="loopback",
        report_dir="x",
    )
    return Report(
        schema="bridge-loadtest/1",
        params=params,
        versions=versions(),
        environment=Environment(2, (0.1, 0.1, 0.1), None, "linux", "2024-01-01T00:00:00Z"),
        phases=[ph],
        histograms=[histogram(0, lat)],
        timeline=timeline(ticks, bridge, sent_at, lat),
        calls=[_rec(0), _rec(1)],
    )


def test_timeline_p99_per_second_of_send_time_and_cpu_percent():
    tl = _report().timeline
    assert [round(p.p99_ms or -1, 3) for p in tl] == [5.0, 6.0, 150.0]
    assert [round(p.bridge_cpu_percent or 0) for p in tl] == [10, 10, 10]
    assert tl[-1].completed == 2 and tl[0].bridge_rss_mib == 50.0


def test_histogram_counts_and_overflow():
    h = histogram(0, np.array([0.0005, 0.0015, 0.0015, 0.2]))
    assert h.counts[0] == 1 and h.counts[1] == 2 and h.above_ms == 1 and sum(h.counts) == 3


def test_json_round_trip_and_versions(tmp_path):
    rep = _report()
    path = write_json(rep, tmp_path / "out")
    back = read_json(path)
    assert back == rep
    for key in ("python", "bridge", "numpy", "websockets", "uvicorn"):
        assert back.versions[key]


def test_png_is_written(tmp_path):
    path, why = write_png(_report(), tmp_path)
    assert why is None and path is not None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_summary_and_plain_progress(tmp_path):
    with open(tmp_path / "o.txt", "w") as out:
        console = Console(file=out, width=200, force_terminal=False)
        print_summary(console, _report().phases)
        with ProgressView(console) as view:
            view.update(
                phase="ulaw_8000",
                t=1.0,
                active=3,
                completed=1,
                errors=0,
                p99_ms=4.5,
                bridge_cpu_percent=12.0,
            )
    text = (tmp_path / "o.txt").read_text()
    assert "relay latency p99 ms" in text and "150.0" in text
    # Two calls of 80 000 mu-law bytes sent and 79 680 heard: seconds at 8000 bytes/s.
    assert "caller audio sent / heard s" in text and "20.0 / 19.9" in text
    assert "active=3 completed=1 errors=0 p99_ms=4.5" in text


def test_png_skipped_with_a_clear_message_without_matplotlib(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now raises ImportError
    path, why = write_png(_report(), tmp_path)
    assert path is None and why is not None and "bridge[report]" in why
    assert not (tmp_path / "report.png").exists()
