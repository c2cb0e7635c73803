"""CPU cost of the load test's echo aligner per call-second of audio (prints figures).

The aligner runs inside the load generator's event loop while calls are live, so its
cost is load-generator time stolen from pacing frames.  This feeds it one call's worth
of real-time traffic (50 frames sent and 50 chunks heard per second, through a
filtering path so matching is not bit-exact) and advances it every 0.5 s, as the runner
does, then reports CPU microseconds per call-second.

    uv run python bench/loadtest_aligner.py [seconds]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bridge.audio.g711 import ulaw_encode
from bridge.loadtest.align import EchoAligner
from bridge.loadtest.probe import FRAME_SAMPLES, make_probe


def main(seconds: float = 60.0) -> None:
    probe = make_probe(seconds, 1.0, seed=1)
    n = np.arange(31) - 15  # a 3.6 kHz linear-phase low-pass: delays 15 samples, not bit-exact
    h = np.sinc(2 * 3600 / 8000 * n) * np.hamming(31)
    h /= h.sum()
    heard = ulaw_encode(
        np.clip(np.convolve(probe.linear.astype(float), h)[: probe.linear.size], -32768, 32767)
        .astype("<i2")
        .tobytes()
    )
    frames = [heard[i : i + FRAME_SAMPLES] for i in range(0, len(heard), FRAME_SAMPLES)]
    al = EchoAligner(probe)
    start = time.process_time()
    for i, chunk in enumerate(frames):
        al.sent(i, 0.02 * i)
        al.heard(chunk, 0.02 * i + 0.006)
        if i % 25 == 24:  # the runner's live step: every 0.5 s
            al.advance()
    al.advance(final=True)
    cpu = time.process_time() - start
    # The failure case: nothing comes back (every frame searched for, none found).
    silent = EchoAligner(probe)
    start = time.process_time()
    for i in range(len(frames)):
        silent.sent(i, 0.02 * i)
        silent.heard(b"\xff" * FRAME_SAMPLES, 0.02 * i + 0.006)
        if i % 25 == 24:
            silent.advance()
    silent.advance(final=True)
    cpu_lost = time.process_time() - start
    call_s = probe.frames * 0.02
    r = al.result()
    print(f"frames {r.frames_sent} matched {r.frames_matched} lost {r.frames_lost}")
    print(f"aligner CPU: {cpu * 1e6 / call_s:.0f} us per call-second ({call_s:.0f} call-seconds)")
    print(f"nothing heard back (all lost): {cpu_lost * 1e6 / call_s:.0f} us per call-second")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
