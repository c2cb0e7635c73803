"""Audio core benchmark: cost per 20 ms frame and algorithmic delay, ours vs baselines.

    uv run python bench/audio.py            # ~1 minute on 2 cores
    uv run python bench/audio.py --quick    # fewer frames, for a smoke run

Per agent format and direction it times ``Transcoder.process`` on 20 ms frames
(``caller->agent``: 160 bytes of mu-law in; ``agent->caller``: one 20 ms PCM frame in)
and, on the same frames in the same run, two baselines doing the same job:

* ``ratecv``: ``audioop.ulaw2lin``/``lin2ulaw`` + the stateful ``audioop.ratecv``
  (cheap, but no anti-alias filter: tones above 4 kHz alias into the speech band);
* ``soxr``: the same G.711 steps + ``soxr.ResampleStream`` (HQ), numpy in/out.

Figures are the median of ``perf_counter_ns`` over every frame of every round, and the
amortised cost (mean without scheduler stalls: soxr works in bursts, so its median
flatters it); the implementations take turns round by round so noise hits them alike.  Then
it prints each resampler's algorithmic delay per direction, measured with an impulse
in 20 ms chunks (:func:`bridge.audio.signals.impulse_delay_ms`), and the quality
figures the tests assert on.  Not a test: nothing here fails on a slow machine.
"""

from __future__ import annotations

import os

# Before numpy loads, as bridge/__init__.py does: a threaded BLAS makes tiny products slow.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import base64
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import soxr

from bridge.audio._audioop import audioop
from bridge.audio.filters import frequency_response
from bridge.audio.formats import FORMATS, AudioFormat, parse_format
from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.audio.resampler import StreamingResampler
from bridge.audio.signals import (
    db,
    fit_tone,
    from_pcm16,
    impulse_delay_ms,
    rms,
    to_pcm16,
    tone,
    tone_pcm16,
    tone_snr_db,
)
from bridge.audio.transcoder import agent_to_caller, caller_to_agent

Process = Callable[[bytes], bytes]
TWILIO = 8000


def speechlike(rate: int, seconds: float) -> np.ndarray:
    """A few harmonics with a syllable-rate envelope plus a little noise, peaks ~-6 dBFS."""
    t = np.arange(round(seconds * rate)) / rate
    f0 = 140.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    noise = np.random.default_rng(0).standard_normal(t.size) * 0.02
    x = (voice * envelope + noise) * 6000.0
    return x


def frames_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data) - size + 1, size)]


def ratecv_direction(src: AudioFormat, dst: AudioFormat) -> Process:
    state: list[object] = [None]
    decode = src.encoding == "ulaw" and src != dst
    encode = dst.encoding == "ulaw" and src != dst

    def process(data: bytes) -> bytes:
        if src == dst:
            return data
        pcm = audioop.ulaw2lin(data, 2) if decode else data
        if src.sample_rate != dst.sample_rate:
            pcm, state[0] = audioop.ratecv(pcm, 2, 1, src.sample_rate, dst.sample_rate, state[0])
        return audioop.lin2ulaw(pcm, 2) if encode else pcm

    return process


def soxr_direction(src: AudioFormat, dst: AudioFormat) -> Process:
    stream = soxr.ResampleStream(src.sample_rate, dst.sample_rate, 1, dtype="int16", quality="HQ")
    decode = src.encoding == "ulaw" and src != dst
    encode = dst.encoding == "ulaw" and src != dst

    def process(data: bytes) -> bytes:
        if src == dst:
            return data
        pcm = audioop.ulaw2lin(data, 2) if decode else data
        if src.sample_rate != dst.sample_rate:
            pcm = stream.resample_chunk(np.frombuffer(pcm, dtype=np.int16)).tobytes()
        return audioop.lin2ulaw(pcm, 2) if encode else pcm

    return process


def time_frames(process: Callable[[Any], Any], frames: list[Any], out: list[float]) -> None:
    clock = time.perf_counter_ns
    for frame in frames:
        t0 = clock()
        process(frame)
        out.append((clock() - t0) / 1000.0)


Cost = tuple[float, float]  # (median, amortised) us per frame
STALL_US = 1000.0


def amortised(samples: list[float]) -> float:
    """Mean cost per frame, leaving out scheduler stalls (> 1 ms: no implementation
    here needs that long for 20 ms of audio; on a shared VM one stall swamps a mean)."""
    kept = [v for v in samples if v < STALL_US]
    return statistics.fmean(kept) if kept else float("nan")


def bench_costs(n_frames: int, rounds: int) -> list[tuple[str, str, dict[str, Cost]]]:
    rows = []
    ulaw8k = parse_format("ulaw_8000")
    ulaw_frames = frames_of(ulaw_encode(to_pcm16(speechlike(TWILIO, 1.0))), 160)
    for name in FORMATS:
        fmt = parse_format(name)
        pcm_frames = frames_of(to_pcm16(speechlike(fmt.sample_rate, 1.0)), fmt.bytes_per_20ms)
        if fmt.encoding == "ulaw":
            pcm_frames = ulaw_frames
        for direction, frames, make, src, dst in (
            ("caller->agent", ulaw_frames, caller_to_agent, ulaw8k, fmt),
            ("agent->caller", pcm_frames, agent_to_caller, fmt, ulaw8k),
        ):
            # (implementation, frames it eats): the base64 variant is the wire form the
            # call path uses, so it includes b64 decode + encode.
            b64_frames = [base64.b64encode(f).decode() for f in frames]
            impls: dict[str, tuple[Callable[[Any], Any], list[Any]]] = {
                "ours": (make(fmt).process, frames),
                "ours b64": (make(fmt).process_b64, b64_frames),
                "ratecv": (ratecv_direction(src, dst), frames),
                "soxr HQ": (soxr_direction(src, dst), frames),
            }
            samples: dict[str, list[float]] = {k: [] for k in impls}
            for p, fs in impls.values():  # warm-up: plans, caches, soxr start-up
                for f in fs[:60]:
                    p(f)
            for _ in range(rounds):
                for k, (p, fs) in impls.items():
                    work = (fs * (n_frames // len(fs) + 1))[:n_frames]
                    time_frames(p, work, samples[k])
            costs = {k: (statistics.median(v), amortised(v)) for k, v in samples.items()}
            rows.append((name, direction, costs))
    return rows


def bench_irregular(seconds: float, rounds: int) -> list[tuple[str, dict[str, float]]]:
    """agent->caller fed the way an agent may send audio: chunks of 10-200 ms, some with
    an odd byte count.  Cost per 20 ms of audio: each call's time scaled by 20 ms over
    the audio it carried, median over calls (robust to stalls like the other figures)."""
    rows = []
    rng = np.random.default_rng(3)
    ulaw8k = parse_format("ulaw_8000")
    for name in FORMATS:
        fmt = parse_format(name)
        if fmt.encoding == "ulaw":
            continue
        pcm = to_pcm16(speechlike(fmt.sample_rate, seconds))
        cuts, i = [], 0
        while i < len(pcm):
            n = 2 * int(fmt.sample_rate * rng.uniform(0.01, 0.2)) + int(rng.integers(0, 2))
            cuts.append(pcm[i : i + n])
            i += n
        per_frame: dict[str, list[float]] = {"ours": [], "ratecv": [], "soxr HQ": []}
        for _ in range(rounds):
            impls: dict[str, Process] = {
                "ours": agent_to_caller(fmt).process,
                "ratecv": ratecv_direction(fmt, ulaw8k),
                "soxr HQ": soxr_direction(fmt, ulaw8k),
            }
            for k, p in impls.items():
                carry = b""  # ratecv and soxr need whole samples: hand the odd byte on
                for chunk in cuts:
                    if k != "ours":
                        chunk, carry = carry + chunk, b""
                        if len(chunk) % 2:
                            chunk, carry = chunk[:-1], chunk[-1:]
                    t0 = time.perf_counter_ns()
                    p(chunk)
                    us = (time.perf_counter_ns() - t0) / 1000.0
                    frames = len(chunk) / fmt.bytes_per_20ms
                    if frames >= 0.5:
                        per_frame[k].append(us / frames)
        rows.append((name, {k: statistics.median(v) for k, v in per_frame.items()}))
    return rows


def bench_delays() -> list[tuple[str, str, float, float, float]]:
    rows = []
    for name in FORMATS:
        rate = parse_format(name).sample_rate
        if rate == TWILIO:
            continue  # no resampling at 8 kHz
        for direction, a, b in (("caller->agent", TWILIO, rate), ("agent->caller", rate, TWILIO)):
            ours = StreamingResampler(a, b)
            sx = soxr.ResampleStream(a, b, 1, dtype="int16", quality="HQ")
            state: list[object] = [None]

            def rcv(pcm: bytes, a: int = a, b: int = b, state: list[object] = state) -> bytes:
                out, state[0] = audioop.ratecv(pcm, 2, 1, a, b, state[0])
                return bytes(out)

            def sxp(pcm: bytes, sx: soxr.ResampleStream = sx) -> bytes:
                return bytes(sx.resample_chunk(np.frombuffer(pcm, dtype=np.int16)).tobytes())

            rows.append(
                (
                    name,
                    direction,
                    impulse_delay_ms(ours.process, a, b),
                    impulse_delay_ms(sxp, a, b),
                    impulse_delay_ms(rcv, a, b),
                )
            )
    return rows


def in_frames(process: Process, pcm: bytes, frame: int) -> bytes:
    return b"".join(process(f) for f in frames_of(pcm, frame))


def quality(name: str) -> tuple[float, ...]:
    """Design stopband, worst alias rejection (ours, ratecv), passband min/max, 3 kHz image
    rejection and round-trip SNR (dB), computed as the tests do."""
    fmt = parse_format(name)
    rate = fmt.sample_rate
    up, down = caller_to_agent(fmt), agent_to_caller(fmt)
    twilio = ulaw_encode(tone_pcm16(1000, 1.0, 8000))
    rt = in_frames(lambda f: down.process(up.process(f)), twilio, 160)
    snr = tone_snr_db(from_pcm16(ulaw_decode(rt))[80:], 8000, 1000)
    if rate == TWILIO:
        return (np.nan,) * 6 + (snr,)
    design = -db(float(frequency_response(rate, TWILIO, np.arange(4500.0, rate / 2, 10.0)).max()))
    alias = naive = np.inf
    pcm_fmt = parse_format(f"pcm_{rate}")
    for f in [*np.arange(4500.0, rate / 2, 250.0), rate / 2 - 50.0]:
        x = tone_pcm16(f, 0.1, rate, dbfs=-1.0)
        y = from_pcm16(in_frames(StreamingResampler(rate, TWILIO).process, x, 2 * (rate // 50)))
        alias = min(alias, db(rms(from_pcm16(x)) / max(rms(y[80:-80]), 0.5)))
        z = in_frames(ratecv_direction(pcm_fmt, parse_format("pcm_8000")), x, 2 * (rate // 50))
        naive = min(naive, db(rms(from_pcm16(x)) / max(rms(from_pcm16(z)[80:-80]), 0.5)))
    gains = []
    for a, b in ((rate, TWILIO), (TWILIO, rate)):
        for f in (300.0, 1000.0, 2000.0, 3000.0, 3400.0):
            x = tone(f, 0.1, a, dbfs=-6.0)
            y = from_pcm16(in_frames(StreamingResampler(a, b).process, to_pcm16(x), 2 * (a // 50)))
            y = y[b // 100 : -b // 100]
            gains.append(db(fit_tone(y, b, f).amplitude / fit_tone(x, a, f).amplitude))
    x3k = tone_pcm16(3000, 0.2, 8000, -1.0)
    y = from_pcm16(in_frames(StreamingResampler(TWILIO, rate).process, x3k, 320))
    image = fit_tone(y[rate // 100 : -rate // 100], rate, 3000).snr_db
    return (design, alias, naive, min(gains), max(gains), image, snr)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames per round (default 3000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per implementation")
    parser.add_argument("--quick", action="store_true", help="300 frames x 2 rounds")
    args = parser.parse_args()
    n, rounds = (300, 2) if args.quick else (args.frames, args.rounds)
    print(
        f"# bridge audio benchmark: {platform.processor() or platform.machine()}, "
        f"Python {sys.version.split()[0]}, numpy {np.__version__}, soxr {soxr.__version__}"
    )
    print(f"# {n} frames x {rounds} rounds each; us per 20 ms frame: median / amortised")
    print("# (amortised = mean without scheduler stalls > 1 ms; soxr returns audio in ~100 ms")
    print("# bursts, so most of its calls are cheap and only the amortised figure is its cost)\n")

    costs = bench_costs(n, rounds)
    impls = list(costs[0][2])
    print(
        table(
            ["format", "direction", *(f"{k} us" for k in impls)],
            [[f, d, *(f"{c[k][0]:.1f} / {c[k][1]:.1f}" for k in impls)] for f, d, c in costs],
        )
    )
    print("\n# agent->caller with irregular chunks (10-200 ms, some odd byte counts):")
    print("# us per 20 ms of audio (call time / 20 ms frames carried, median over calls)\n")
    irregular = bench_irregular(2.0 if args.quick else 10.0, rounds)
    print(
        table(
            ["format", *(f"{k} us" for k in irregular[0][1])],
            [[f, *(f"{v:.1f}" for v in c.values())] for f, c in irregular],
        )
    )
    print("\n# algorithmic delay, impulse in 20 ms chunks (ms)\n")
    print(
        table(
            ["format", "direction", "ours ms", "soxr HQ ms", "ratecv ms"],
            [[f, d, f"{o:.2f}", f"{s:.2f}", f"{r:.2f}"] for f, d, o, s, r in bench_delays()],
        )
    )
    print("\n# quality, dB (computed as in tests/audio; alias rejection is floored by int16")
    print("# rounding: an all-zero output counts as 0.5 LSB RMS, i.e. ~92 dB at -1 dBFS)\n")
    rows = []
    for name in FORMATS:
        values = quality(name)
        rows.append(
            [name]
            + [
                "-" if np.isnan(v) else f"{v:.2f}" if i in (3, 4) else f"{v:.1f}"
                for i, v in enumerate(values)
            ]
        )
    headers = ["format", "design stop", "alias rej.", "ratecv alias rej.", "pass min", "pass max"]
    headers.append("3k image rej.")
    print(table([*headers, "round-trip SNR"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
