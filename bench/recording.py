"""µs of CPU the call recorder costs per 20 ms frame pair (one caller frame in, one
agent frame out), and per call-second with its file writes.

Runs :class:`~bridge.recording.call.CallRecording` the way the driver feeds it: every
20 ms a parsed Twilio ``media`` body (caller audio) and, written to Twilio, the agent's
``media`` frame text (as the session builds it; 100 ms frames, so one in five pairs
carries one), a ``clear`` now and then; the WAV is appended once a call-second to a
real file in a temporary directory (the page cache: the recorder never fsyncs).  The clock is simulated (20 ms per pair), so only the
recorder's own CPU is timed.  What this leaves out is the driver's share, which is a
``None`` check per frame when recording is off.

    uv run python bench/recording.py [--seconds 600]

For the cost at load ("CPU per call-second, recording on vs off, at 50 calls"), run the
load test twice against a bridge with and without ``BRIDGE_RECORDING=true`` and compare
its ``bridge CPU per call-second`` line (see ``docs/recording.md``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import tempfile
import time
from pathlib import Path

from bridge.audio import signals
from bridge.audio.g711 import ulaw_encode
from bridge.metrics import Metrics
from bridge.recording.call import CallRecording
from bridge.twilio import media as twilio

SID = "MZ0123456789abcdef0123456789abcdef"
CALL = "CA0123456789abcdef0123456789abcdef"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=600, help="call-seconds to record")
    args = ap.parse_args()

    tone = ulaw_encode(signals.to_pcm16(signals.tone(440.0, 1.0, 8000, -12.0)))
    caller = [
        twilio.MediaBody(payload=twilio.encode_payload(tone[i : i + 160]), timestamp="")
        for i in range(0, 8000, 160)
    ]
    agent = [
        [twilio.media_frame(SID, twilio.encode_payload(tone[i : i + 800]))]
        for i in range(0, 8000, 800)
    ]
    clear = [twilio.encode(twilio.Clear(streamSid=SID))]
    now = [0.0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{CALL}.wav"
        rec = CallRecording(
            path, call_sid=CALL, stream_sid=SID, metrics=Metrics(), clock=lambda: now[0]
        )
        pairs = args.seconds * 50
        cpu0 = time.process_time()
        for k in range(pairs):
            now[0] = k * 0.02
            body = caller[k % 50]
            body.timestamp = str(k * 20)
            rec.caller_media(body)
            if k % 5 == 0:
                rec.sent(agent[(k // 5) % 10])
            if k % 500 == 499:  # a barge-in every 10 s
                rec.sent(clear)
        rec.end()
        cpu = time.process_time() - cpu0
        size = path.stat().st_size
    us_pair = cpu / pairs * 1e6
    print(f"recorded {args.seconds} call-seconds, {size / 1e6:.1f} MB WAV")
    print(f"recorder CPU: {us_pair:.1f} µs per 20 ms frame pair")
    print(
        f"             {us_pair * 50 / 1000:.2f} ms per call-second ({us_pair * 50 / 1e4:.3f} % of a core per call)"
    )
    print(f"             at 50 calls: {us_pair * 50 * 50 / 1e4:.1f} % of a core")


if __name__ == "__main__":
    main()
