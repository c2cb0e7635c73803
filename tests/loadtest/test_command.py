"""`bridge loadtest` end to end: a short real run (child processes, real sockets, real time).

The smoke run asserts on what the report says (every call completed, every probe frame
sent came back, the files exist), never on how fast: timings on a shared 2-core machine
are benchmark material (docs/performance.md), not test material.
"""

from __future__ import annotations

import json

import pytest

from bridge.cli import main


def test_smoke_run_completes_and_accounts_for_every_frame(tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(
        [
            "loadtest",
            "--calls", "5",
            "--ramp", "1s",
            "--duration", "4s",
            "--agent-format", "pcm_16000",
            "--scenario", "loopback",
            "--report", str(out),
            # Timing criteria off: only lost frames and failed calls can fail this run.
            "--max-p99-ms", "1e9",
            "--max-cpu-ms", "1e9",
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert rc == 0, printed
    (phase,) = report["phases"]
    assert phase["outcomes"] == {"completed": 5, "failed_to_connect": 0, "dropped": 0}
    integ = phase["integrity"]
    # 4 s calls: 0.6 s tail, 1 s tone, 2.4 s of probe noise = 120 frames per call
    assert integ["probe_frames_sent"] == 5 * 120
    assert integ["probe_frames_received"] + integ["probe_frames_lost"] == integ["probe_frames_sent"]
    assert integ["probe_frames_lost"] == 0 and integ["out_of_order"] == 0
    # loopback: every byte the callers sent was heard back, give or take the audio in
    # flight (the resamplers' delay) when they hung up
    assert 0 <= integ["bytes_sent"] - integ["bytes_received"] <= 5 * 3 * 160
    assert phase["relay_latency_ms"]["count"] > 0
    assert phase["integrity"]["tone_snr_db"]["min"] > 20
    assert phase["resources"]["bridge_cpu_s"] > 0 and phase["resources"]["call_seconds"] > 15
    assert len(report["calls"]) == 5 and {c["outcome"] for c in report["calls"]} == {"completed"}
    for key in ("python", "bridge", "numpy", "websockets", "uvicorn"):
        assert report["versions"][key]
    assert (out / "report.png").stat().st_size > 10_000
    assert (out / "stack" / "bridge.log").exists()
    assert "relay latency p99 ms" in printed


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--target", "http://10.9.8.7:8080", "--to", "+15550100001"], "not a loopback"),
        (["--duration", "forever"], "--duration"),
        (["--agent-format", "mp3_44100"], "--agent-format"),
        (["--target", "http://127.0.0.1:9", "--agent-format", "pcm_16000"], "--to"),
    ],
)
def test_bad_options_exit_2_with_a_message_and_send_nothing(argv, says, capsys):
    assert main(["loadtest", *argv]) == 2
    assert says in capsys.readouterr().err
