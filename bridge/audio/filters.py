"""The low-pass kernel every rate conversion uses, and its polyphase tables.

One side of every conversion the bridge makes is the 8 kHz telephone line, so one
analogue specification serves every direction and format.  It is written relative to
the lower of the two rates (``fmin``) so other pairs scale the same way:

==================  =========================  ================================
band                at fmin = 8 kHz            requirement
==================  =========================  ================================
passband            0 - 3400 Hz  (0.425 fmin)  within +/-0.5 dB
transition          3400 - 4500 Hz             don't care (aliases land >3.5 kHz)
stopband            >= 4500 Hz  (0.5625 fmin)  >= 80 dB down (design: ~95 dB)
==================  =========================  ================================

Design: a **linear-phase Kaiser-windowed sinc**, defined in continuous time so the
coefficients of any polyphase phase (441 of them for 8 kHz <-> 44.1 kHz) are samples of
one function, not of a huge discrete prototype.  Why this and not the alternatives:

* Latency budget.  The kernel spans ``S = 4.4 ms`` and is centred at ``S/2``, so the
  group delay is **2.2 ms**, the same for every rate and both directions, and the
  streaming resampler adds no buffering on top (an output sample is produced as soon
  as the newest input it needs has arrived).  That is well inside the 5 ms budget and
  30-75x less than a soxr HQ stream (73-166 ms measured: docs/performance.md).
* Quality.  The textbook Kaiser recipe for 90 dB over a 1.1 kHz transition needs a
  5.25 ms span because it spends the same tiny ripple (3e-5) on the passband as on the
  stopband.  The passband only needs +/-0.5 dB, so the cutoff is pulled down to
  3800 Hz and beta raised to 9.5 (grid search over span, cutoff and beta, keeping the
  passband inside +/-0.3 dB): at 4.4 ms the stopband is ~95 dB down from 4.5 kHz up,
  the passband droops at most ~0.28 dB at 3.4 kHz.  (4.2 ms would give ~89 dB; the
  extra 0.1 ms of delay buys margin for float32 arithmetic and int16 rounding.)
* Linear, not minimum, phase.  Minimum phase would roughly halve the delay (~1 ms)
  but bends the phase of speech harmonics; 2.2 ms is already far below the budget,
  so the symmetric kernel keeps waveforms intact and the numbers easy to verify.
* Cost.  Taps per output = ``floor(S * f_in) + 1``: 36 at 8 kHz, 71 at 16 kHz, 195 at
  44.1 kHz, 212 at 48 kHz.  An equiripple (Parks-McClellan) design could be ~30%
  shorter but needs a design routine numpy lacks, and the cost is already within the
  per-frame budget.

Every row of a polyphase table is normalised to sum to exactly 1, so DC passes with
unit gain in every phase (no phase-dependent gain ripple).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bridge.errors import AudioFormatError

# All relative to the lower rate (8 kHz on every path the bridge uses).
PASSBAND_EDGE = 3400.0 / 8000.0
STOPBAND_EDGE = 4500.0 / 8000.0
CUTOFF = 3800.0 / 8000.0
SPAN_SAMPLES = 4.4e-3 * 8000.0  # kernel span in samples of the lower rate (4.4 ms at 8 kHz)
BETA = 9.5

# Largest reduced up-factor we build tables for: 8000 <-> 44100 needs 441, 44100 <-> 48000
# needs 160.  Odd rates with a huge common period would need megabytes of tables.
MAX_PHASES = 2048
MAX_RATE = 384_000


@dataclass(frozen=True)
class Polyphase:
    """Coefficient table of one ``in_rate -> out_rate`` conversion.

    Output ``n`` sits at input position ``n * down / up``.  Its newest input is
    ``base = (n * down) // up`` and its phase ``p = (n * down) % up``; it is
    ``sum(coeffs[p, j] * x[base - j] for j in range(taps))``.
    """

    in_rate: int
    out_rate: int
    up: int  # L: reduced out_rate / gcd
    down: int  # M: reduced in_rate / gcd
    taps: int
    coeffs: npt.NDArray[np.float64]  # (up, taps); each row sums to 1
    delay_s: float  # group delay, = span / 2


def kernel(tau_s: npt.NDArray[np.float64], fmin: float) -> npt.NDArray[np.float64]:
    """The continuous-time kernel at time offsets ``tau_s`` from its centre (seconds).

    Kaiser-windowed sinc, zero outside ``|tau| <= span/2``; unnormalised.
    """
    half = SPAN_SAMPLES / fmin / 2.0
    fc = CUTOFF * fmin
    r = np.clip(1.0 - (tau_s / half) ** 2, 0.0, None)
    window = np.i0(BETA * np.sqrt(r)) / np.i0(BETA)
    out: npt.NDArray[np.float64] = 2.0 * fc * np.sinc(2.0 * fc * tau_s) * window
    out[np.abs(tau_s) > half] = 0.0
    return out


def check_rates(in_rate: int, out_rate: int) -> tuple[int, int]:
    """Validate a rate pair; return the reduced ``(up, down)`` factors."""
    for what, rate in (("input", in_rate), ("output", out_rate)):
        if not isinstance(rate, int) or isinstance(rate, bool) or not 0 < rate <= MAX_RATE:
            raise AudioFormatError(
                f"{what} sample rate {rate!r} is not an integer between 1 and {MAX_RATE} Hz"
            )
    g = math.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    if up > MAX_PHASES:
        raise AudioFormatError(
            f"cannot resample {in_rate} Hz -> {out_rate} Hz: the rates share no useful "
            f"common period ({up} filter phases; at most {MAX_PHASES})"
        )
    return up, down


@functools.lru_cache(maxsize=32)
def polyphase(in_rate: int, out_rate: int) -> Polyphase:
    """Polyphase table for ``in_rate -> out_rate`` (cached; tables are read-only)."""
    up, down = check_rates(in_rate, out_rate)
    fmin = float(min(in_rate, out_rate))
    span_s = SPAN_SAMPLES / fmin
    delay_s = span_s / 2.0
    taps = math.floor(span_s * in_rate) + 1
    # Phase p puts the output p/up of an input sample after its newest input;
    # tap j reaches back j samples, so the kernel sees (p/up + j)/in_rate - delay.
    frac = np.arange(up, dtype=np.float64)[:, None] / up
    j = np.arange(taps, dtype=np.float64)[None, :]
    coeffs = kernel((frac + j) / in_rate - delay_s, fmin)
    coeffs /= coeffs.sum(axis=1, keepdims=True)
    coeffs.setflags(write=False)
    return Polyphase(in_rate, out_rate, up, down, taps, coeffs, delay_s)


def frequency_response(
    in_rate: int, out_rate: int, freqs_hz: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Magnitude response (linear) of the conversion's kernel at ``freqs_hz``.

    The response of the equivalent prototype filter at rate ``up * in_rate``: the
    gain a tone at ``f`` (Hz, relative to the input for downsampling, to the output
    for upsampling) sees on its way through.  Used by tests and the benchmark to
    report the design; the tone tests measure the real thing.
    """
    pp = polyphase(in_rate, out_rate)
    f = np.atleast_1d(np.asarray(freqs_hz, dtype=np.float64))
    # Prototype tap (j, p) sits at time (j + p/up) / in_rate, so the DTFT factors into
    # a (freqs x taps) @ (taps x up) product and a per-phase twiddle: few exps, one gemm.
    j = np.arange(pp.taps, dtype=np.float64)
    p = np.arange(pp.up, dtype=np.float64) / pp.up
    out = np.empty(f.size, dtype=np.float64)
    step = max(1, 2_000_000 // (pp.up + pp.taps))
    for i in range(0, f.size, step):
        w = -2j * np.pi * f[i : i + step, None] / in_rate
        per_phase = np.exp(w * j) @ pp.coeffs.T
        out[i : i + step] = np.abs((per_phase * np.exp(w * p)).sum(axis=1))
    # Each phase row sums to 1, so the prototype sums to `up`: divide for unit DC gain.
    return out / pp.up
