"""In-band DTMF: ITU-T Q.23 tone generation and a Goertzel detector (pure, numpy only).

Twilio cannot receive digits over a Media Stream, so the ``send_dtmf`` tool plays the
tones into the caller's audio like a handset would.  The detector exists to prove the
tones survive the trip (8 kHz, mu-law quantisation) and for the emulated callee.

Generation: each key is the sum of one low-group and one high-group sine (Q.23), by
default 100 ms of tone and 100 ms of silence, the high tone 2 dB above the low one
(positive twist compensates the line's high-frequency loss, as phones do).  Edges get
a 2 ms raised-cosine ramp so a key does not click and splash energy into other bins.
``w`` is a 0.5 s pause (the Twilio ``sendDigits`` convention).

Detection works on blocks of :data:`BLOCK` samples.  110 samples at 8 kHz (13.75 ms)
puts the first spectral null of each bin almost exactly on the neighbouring low-group
frequency (~73 Hz apart) and the second on the high-group neighbours, and is short
enough that a 1.5 % frequency error costs under 2 dB.  Each block is tested for:

* level: both tones at least ``min_level_dbm0``;
* dominance: each tone beats the other tones of its group by ``dominance_db``;
* twist: high minus low within [-``max_reverse_twist_db``, ``max_forward_twist_db``];
* purity: the two tones carry at least ``min_tone_fraction`` of the block's energy
  (speech and noise spread their energy; a dual tone does not).

A key is reported after ``min_on_blocks`` agreeing blocks (≈ 40 ms, the Q.24 minimum)
and re-armed after ``min_off_blocks`` blocks without it, so one long press is one digit
and the same key twice needs a gap between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from bridge.errors import InputError

RATE: Final = 8000

LOW_GROUP: Final = (697.0, 770.0, 852.0, 941.0)
HIGH_GROUP: Final = (1209.0, 1336.0, 1477.0, 1633.0)
# Q.23 keypad: row = low-group frequency, column = high-group frequency.
KEYPAD: Final = ("123A", "456B", "789C", "*0#D")
FREQS: Final[dict[str, tuple[float, float]]] = {
    key: (LOW_GROUP[r], HIGH_GROUP[c]) for r, row in enumerate(KEYPAD) for c, key in enumerate(row)
}
PAUSE: Final = "w"
VALID: Final = frozenset(FREQS) | {PAUSE}
MAX_DIGITS: Final = 64  # one tool call; longer strings are refused, not truncated

# Peak amplitude of a 0 dBm0 sine in the 16-bit scale G.711 decodes to: mu-law's largest
# sine (peak 32124) is +3.17 dBm0.
DBM0_PEAK: Final = 32124.0 * 10 ** (-3.17 / 20)

BLOCK: Final = 110

FloatArray = npt.NDArray[np.float64]
Int16Array = npt.NDArray[np.int16]


def validate_digits(digits: object) -> str:
    """The digit string if it is playable (0-9, *, #, A-D, w), else InputError("digits")."""
    if not isinstance(digits, str):
        raise InputError("digits", f"expected a string, got {type(digits).__name__}")
    if not digits:
        raise InputError("digits", "is empty; expected 0-9, *, #, A-D or w (pause)")
    if len(digits) > MAX_DIGITS:
        raise InputError("digits", f"has {len(digits)} characters; at most {MAX_DIGITS}")
    norm = digits.upper().replace("W", PAUSE)
    bad = sorted({c for c in norm if c not in VALID})
    if bad:
        raise InputError(
            "digits", f"has invalid characters {''.join(bad)!r}; expected 0-9, *, #, A-D or w"
        )
    return norm


def _amplitude(dbm0: float) -> float:
    return DBM0_PEAK * 10 ** (dbm0 / 20)


def tone_pcm(
    key: str,
    duration_ms: float,
    *,
    rate: int = RATE,
    low_dbm0: float = -8.0,
    high_dbm0: float = -6.0,
    ramp_ms: float = 2.0,
) -> FloatArray:
    """One key's dual tone as float samples in the 16-bit scale (no gap)."""
    low, high = FREQS[key]
    n = round(rate * duration_ms / 1000)
    t = np.arange(n, dtype=np.float64) / rate
    x = _amplitude(low_dbm0) * np.sin(2 * np.pi * low * t) + _amplitude(high_dbm0) * np.sin(
        2 * np.pi * high * t
    )
    ramp = min(round(rate * ramp_ms / 1000), n // 2)
    if ramp > 0:
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        x[:ramp] *= edge
        x[n - ramp :] *= edge[::-1]
    return x


def dtmf_pcm(
    digits: str,
    *,
    rate: int = RATE,
    tone_ms: float = 100.0,
    gap_ms: float = 100.0,
    pause_ms: float = 500.0,
    low_dbm0: float = -8.0,
    high_dbm0: float = -6.0,
) -> Int16Array:
    """16-bit PCM of ``digits`` (validated): tone + gap per key, silence for ``w``."""
    norm = validate_digits(digits)
    gap = np.zeros(round(rate * gap_ms / 1000), dtype=np.float64)
    pause = np.zeros(round(rate * pause_ms / 1000), dtype=np.float64)
    parts: list[FloatArray] = []
    for key in norm:
        if key == PAUSE:
            parts.append(pause)
        else:
            parts.append(tone_pcm(key, tone_ms, rate=rate, low_dbm0=low_dbm0, high_dbm0=high_dbm0))
            parts.append(gap)
    out = np.concatenate(parts)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def duration_s(digits: str, *, tone_ms: float = 100.0, gap_ms: float = 100.0) -> float:
    """How long ``dtmf_pcm(digits)`` plays (validated digits)."""
    norm = validate_digits(digits)
    keys = sum(1 for c in norm if c != PAUSE)
    return (keys * (tone_ms + gap_ms) + norm.count(PAUSE) * 500.0) / 1000


# --------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class DetectorSettings:
    min_level_dbm0: float = -30.0
    dominance_db: float = 6.0
    max_forward_twist_db: float = 8.0  # high group louder than low
    max_reverse_twist_db: float = 4.0  # low group louder than high
    min_tone_fraction: float = 0.6
    min_on_blocks: int = 3  # 3 x 13.75 ms ≈ 41 ms
    min_off_blocks: int = 2


@dataclass(frozen=True)
class DetectedDigit:
    digit: str
    at_s: float  # start of the first block the key was heard in, from the first sample fed


_ALL_FREQS: Final = np.array(LOW_GROUP + HIGH_GROUP, dtype=np.float64)


def goertzel_power(blocks: FloatArray, freqs: FloatArray, rate: int = RATE) -> FloatArray:
    """|X(f)|² of each row of ``blocks`` at each of ``freqs`` by the Goertzel recursion.

    Vectorised across blocks and frequencies; the loop runs once per sample of a block.
    ``freqs`` need not fall on DFT bins (the generalised form: coefficient 2·cos(ω)).
    """
    if blocks.ndim != 2:
        raise ValueError("blocks must be 2-D (n_blocks, block_len)")
    w = 2 * np.pi * freqs / rate
    coeff = 2 * np.cos(w)
    s1 = np.zeros((blocks.shape[0], freqs.size))
    s2 = np.zeros_like(s1)
    for n in range(blocks.shape[1]):
        s0 = blocks[:, n, None] + coeff * s1 - s2
        s2 = s1
        s1 = s0
    power: FloatArray = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return power


def classify_blocks(
    blocks: FloatArray, settings: DetectorSettings | None = None, rate: int = RATE
) -> list[str | None]:
    """For each block, the key it holds, or None (no key, or a check failed)."""
    settings = settings or DetectorSettings()
    n = blocks.shape[1]
    power = goertzel_power(blocks, _ALL_FREQS, rate)
    energy = np.sum(blocks * blocks, axis=1)
    # A sine of amplitude A at an analysed frequency gives |X|² ≈ (A·N/2)².
    amp = 2 * np.sqrt(power) / n
    level = 20 * np.log10(np.maximum(amp, 1e-9) / DBM0_PEAK)
    out: list[str | None] = []
    dom = 10 ** (settings.dominance_db / 10)
    min_amp = _amplitude(settings.min_level_dbm0)
    for b in range(blocks.shape[0]):
        p = power[b]
        lo = int(np.argmax(p[:4]))
        hi = 4 + int(np.argmax(p[4:]))
        ok = amp[b, lo] >= min_amp and amp[b, hi] >= min_amp
        if ok:
            others_lo = np.delete(p[:4], lo)
            others_hi = np.delete(p[4:], hi - 4)
            ok = bool(np.all(p[lo] >= dom * others_lo) and np.all(p[hi] >= dom * others_hi))
        if ok:
            twist = level[b, hi] - level[b, lo]
            ok = -settings.max_reverse_twist_db <= twist <= settings.max_forward_twist_db
        if ok and energy[b] > 0:
            # Parseval: a pure sine carries |X|² = N·Σx²/2 of the block's energy.
            fraction = (p[lo] + p[hi]) / (n * energy[b] / 2)
            ok = fraction >= settings.min_tone_fraction
        out.append(KEYPAD[lo][hi - 4] if ok else None)
    return out


class DtmfDetector:
    """Streaming detector: feed audio in any chunk sizes, get digits as they complete.

    Feed 16-bit PCM (:meth:`feed_pcm`) at ``rate``; for mu-law decode first with
    ``bridge.audio.g711`` (see :func:`bridge.telephony.dtmf_audio.detect_ulaw`).
    """

    def __init__(self, settings: DetectorSettings | None = None, rate: int = RATE):
        self.settings = settings or DetectorSettings()
        self.rate = rate
        self._pending = np.zeros(0, dtype=np.float64)
        self._blocks_seen = 0
        self._candidate: str | None = None
        self._run = 0
        self._run_start = 0
        self._reported: str | None = None  # key held and already reported
        self._off = 0  # blocks since the reported key was last heard

    def feed_pcm(self, samples: npt.ArrayLike) -> list[DetectedDigit]:
        x = np.asarray(samples, dtype=np.float64).ravel()
        data = np.concatenate([self._pending, x]) if self._pending.size else x
        whole = data.size // BLOCK
        self._pending = data[whole * BLOCK :].copy()
        if whole == 0:
            return []
        blocks = data[: whole * BLOCK].reshape(whole, BLOCK)
        found: list[DetectedDigit] = []
        s = self.settings
        for key in classify_blocks(blocks, s, self.rate):
            index = self._blocks_seen
            self._blocks_seen += 1
            if self._reported is not None:
                if key == self._reported:
                    self._off = 0  # still held: one press is one digit
                    continue
                self._off += 1
                if self._off >= s.min_off_blocks:
                    self._reported = None
            if key is None:
                self._candidate, self._run = None, 0
            elif key == self._candidate:
                self._run += 1
            else:
                self._candidate, self._run, self._run_start = key, 1, index
            if self._reported is None and key is not None and self._run >= s.min_on_blocks:
                found.append(DetectedDigit(key, self._run_start * BLOCK / self.rate))
                self._reported, self._off = key, 0
                self._candidate, self._run = None, 0
        return found


def detect_pcm(
    samples: npt.ArrayLike, settings: DetectorSettings | None = None, rate: int = RATE
) -> str:
    """All digits in a whole recording, as one string."""
    det = DtmfDetector(settings, rate)
    return "".join(d.digit for d in det.feed_pcm(samples))


def level_dbm0(samples: npt.ArrayLike) -> float:
    """RMS level of 16-bit samples in dBm0 (a 0 dBm0 sine has RMS DBM0_PEAK/√2)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(x * x)))
    return -math.inf if rms == 0 else 20 * math.log10(rms / (DBM0_PEAK / math.sqrt(2)))
