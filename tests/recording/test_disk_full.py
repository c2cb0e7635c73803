"""A full disk stops the recording, with an alarm and a metric; the call goes on.

The disk fills for real: the call runs in a child process under a file-size limit
(RLIMIT_FSIZE), so the recording's writes fail with EFBIG part way through the call,
as they would with ENOSPC on a full volume.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LIMIT = 64 * 1024  # two seconds of stereo 8 kHz 16-bit audio
ROOT = Path(__file__).resolve().parents[2]


def test_a_full_disk_stops_the_recording_and_the_call_goes_on(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-m", "tests.recording.disk_full_child", str(tmp_path), str(LIMIT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert child.returncode == 0, child.stderr[-3000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    # The call was untouched: it ran its whole script and ended as the caller hung up.
    assert out["outcome"] == "completed"
    assert out["end_reason"] == "caller_hangup"
    assert out["calls_ok"] == 1
    assert out["stream_s"] > 5.0
    # The caller kept hearing the agent after the recording had stopped (~2 s in).
    assert sum(n for t, n in out["heard"] if t > 3.0) > 8000
    # The recording stopped at the limit: a valid WAV of what fitted, one alarm, counted.
    assert out["file_bytes"] <= LIMIT
    assert out["wav_frames"] * 4 + 44 <= LIMIT
    assert out["wav_frames"] >= 1.5 * 8000
    assert out["errors_efbig"] == 1
    assert out["write_failed_logs"] == 1
    assert out["recordings"] == 1
