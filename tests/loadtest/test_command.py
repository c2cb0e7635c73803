"""`bridge loadtest` end to end: a short real run (child processes, real sockets, real time).

The smoke run asserts on what the report says (every call completed, every probe frame
sent came back, the files exist), never on how fast: timings on a shared 2-core machine
are benchmark material (docs/performance.md), not test material.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from bridge.cli import main
from bridge.loadtest.stack import free_port


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
    # every frame accounted for: heard back, or lost, or (only on a badly overloaded
    # machine, where the echo lags more than the caller's 0.6 s tail) still on its way
    assert (
        integ["probe_frames_received"] + integ["probe_frames_lost"] + integ["probe_frames_unheard"]
        == integ["probe_frames_sent"]
    )
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


def test_remote_target_routes_by_number_and_reads_cpu_from_metrics(tmp_path, capsys):
    """A bridge someone else started (here: `bridge serve` with its built-in emulator and
    a static route to the seeded loopback agent); CPU and RSS come from its /metrics."""
    port = free_port()
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(
        "[server]\n"
        f'port = {port}\npublic_url = "http://127.0.0.1:{port}"\n'
        '[twilio]\nauth_token = "remote-test-token"\napi_base_url = "http://127.0.0.1:9"\n'
        f'[store]\ndb = "{tmp_path / "bridge.db"}"\n'
        '[log]\nlevel = "warning"\n'
        '[[routes]]\nnumber = "+15550100100"\nagent_id = "agent_emulator_loopback"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "TWILIO_"))}
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "--config", str(cfg), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        out = tmp_path / "report"
        rc = main(
            [
                "--config", str(cfg),
                "loadtest",
                "--target", f"http://127.0.0.1:{port}",
                "--to", "+15550100100",
                "--calls", "2",
                "--ramp", "0.5s",
                "--duration", "3s",
                "--report", str(out),
                "--max-p99-ms", "1e9",
                "--max-cpu-ms", "1e9",
            ]
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(15)
    report = json.loads((out / "report.json").read_text())
    assert rc == 0, capsys.readouterr().out
    (phase,) = report["phases"]
    assert phase["outcomes"]["completed"] == 2
    assert phase["integrity"]["probe_frames_lost"] == 0
    assert phase["resources"]["bridge_cpu_s"] > 0 and phase["resources"]["emulator_cpu_s"] is None
