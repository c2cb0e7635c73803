"""Test signals and measurements: tones, levels, SNR of a tone, impulse delay.

Pure numpy, shared by the audio tests, the end-to-end tests and the load generator so
that "the tone came through at 36 dB SNR" means the same thing everywhere.

Conventions: samples are float64 in int16 units (full scale 32767);
0 dBFS is a sine whose peak is full scale (so its RMS is 32767/sqrt(2)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FULL_SCALE = 32767.0
F64 = npt.NDArray[np.float64]


def tone(freq_hz: float, seconds: float, rate: int, dbfs: float = -10.0, phase: float = 0.0) -> F64:
    """A sine of ``freq_hz`` at ``dbfs`` (peak relative to full scale), unrounded."""
    n = round(seconds * rate)
    amp = FULL_SCALE * 10.0 ** (dbfs / 20.0)
    out: F64 = amp * np.sin(2.0 * np.pi * freq_hz * np.arange(n) / rate + phase)
    return out


def to_pcm16(samples: npt.ArrayLike) -> bytes:
    """Round and saturate to 16-bit little-endian PCM bytes."""
    a = np.clip(np.rint(np.asarray(samples, dtype=np.float64)), -32768, 32767)
    return a.astype("<i2").tobytes()


def from_pcm16(pcm16le: bytes) -> F64:
    """16-bit little-endian PCM bytes as float64 samples (a trailing odd byte is ignored)."""
    return np.frombuffer(pcm16le, dtype="<i2", count=len(pcm16le) // 2).astype(np.float64)


def tone_pcm16(freq_hz: float, seconds: float, rate: int, dbfs: float = -10.0) -> bytes:
    """:func:`tone` as PCM bytes, ready to feed a transcoder or a socket."""
    return to_pcm16(tone(freq_hz, seconds, rate, dbfs))


def rms(samples: npt.ArrayLike) -> float:
    a = np.asarray(samples, dtype=np.float64)
    return float(np.sqrt(np.mean(a * a))) if a.size else 0.0


def level_dbfs(samples: npt.ArrayLike) -> float:
    """RMS level in dBFS (a full-scale sine is 0 dBFS); ``-inf`` for silence."""
    r = rms(samples)
    return 20.0 * math.log10(r / (FULL_SCALE / math.sqrt(2.0))) if r > 0 else -math.inf


def db(ratio: float) -> float:
    """20*log10 of an amplitude ratio; ``-inf`` for a zero ratio."""
    return 20.0 * math.log10(ratio) if ratio > 0 else -math.inf


@dataclass(frozen=True)
class ToneFit:
    """Least-squares fit of one known-frequency sine (plus DC) to a signal."""

    freq_hz: float
    amplitude: float  # peak, int16 units
    phase: float  # radians, of sin(2*pi*f*t + phase) at the first sample
    dc: float
    residual_rms: float  # what is left after subtracting the fitted sine and DC

    @property
    def dbfs(self) -> float:
        return db(self.amplitude / FULL_SCALE)

    @property
    def snr_db(self) -> float:
        """Tone power over residual power (noise, distortion, aliases, images)."""
        tone_rms = self.amplitude / math.sqrt(2.0)
        if self.residual_rms == 0.0:
            return math.inf
        return db(tone_rms / self.residual_rms)


def fit_tone(samples: npt.ArrayLike, rate: int, freq_hz: float) -> ToneFit:
    """Fit ``a*sin + b*cos + c`` at ``freq_hz`` and subtract it (any delay or phase)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size < 3:
        raise ValueError(f"need at least 3 samples to fit a tone, got {x.size}")
    w = 2.0 * np.pi * freq_hz * np.arange(x.size) / rate
    basis = np.stack([np.sin(w), np.cos(w), np.ones_like(w)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    a, b, c = (float(v) for v in coef)
    residual = x - basis @ coef
    return ToneFit(freq_hz, math.hypot(a, b), math.atan2(b, a), c, rms(residual))


def tone_snr_db(samples: npt.ArrayLike, rate: int, freq_hz: float) -> float:
    """SNR of the ``freq_hz`` tone in ``samples`` (see :func:`fit_tone`)."""
    return fit_tone(samples, rate, freq_hz).snr_db


def impulse_delay_ms(
    process: Callable[[bytes], bytes],
    in_rate: int,
    out_rate: int,
    chunk_ms: float = 20.0,
    seconds: float = 0.6,
    at_s: float = 0.1,
) -> float:
    """Algorithmic delay of a streaming PCM16 converter, measured with an impulse.

    Feeds ``seconds`` of silence with one impulse at ``at_s`` through ``process`` in
    ``chunk_ms`` chunks, keeping only what ``process`` returns as it goes (no flush),
    and models a real-time player that starts as late as it must to never run dry:

    * ``prebuffer`` = max over calls that returned audio of (input time fed by the end
      of that call - output time returned before it).  A converter that returns each
      chunk's worth at once needs exactly one chunk; one that holds audio back or
      emits it in bursts (soxr's stream does, ~100 ms at a time) needs more.
    * ``offset`` = where the output peak sits in the output stream (interpolated
      between samples) minus where the impulse sat in the input: the filter's own
      delay, unless the converter trims it from its output.

    Delay = ``prebuffer - chunk + offset``: the latency added on top of the chunking
    that a passthrough would have too.
    """
    n = round(seconds * in_rate)
    i0 = round(at_s * in_rate)
    x = np.zeros(n)
    x[i0] = 16384.0
    pcm = to_pcm16(x)
    chunk = max(1, round(chunk_ms * in_rate / 1000.0))
    parts: list[F64] = []
    prebuffer_s = 0.0
    returned = 0
    for i in range(0, n, chunk):
        out = from_pcm16(process(pcm[2 * i : 2 * (i + chunk)]))
        if out.size:
            fed = min(i + chunk, n)
            prebuffer_s = max(prebuffer_s, fed / in_rate - returned / out_rate)
            returned += out.size
            parts.append(out)
    y = np.abs(np.concatenate(parts)) if parts else np.zeros(0)
    if y.size == 0 or y.max() == 0:
        return math.inf  # held everything back
    k = int(np.argmax(y))
    frac = 0.0
    if 0 < k < y.size - 1:
        den = y[k - 1] - 2.0 * y[k] + y[k + 1]
        frac = 0.5 * (y[k - 1] - y[k + 1]) / den if den else 0.0
    offset_s = (k + frac) / out_rate - i0 / in_rate
    return (prebuffer_s - chunk / in_rate + offset_s) * 1000.0
