"""The probe: the known audio every measured call sends, so what comes back can be located.

A probe is band-limited noise (200-3400 Hz, the telephone band, so the bridge's
anti-aliasing filters keep it) followed by a 1004 Hz tone.  Noise because any 20 ms of
it is unlike any other 20 ms: a frame heard back can be matched to the frame sent by
normalised cross-correlation even after mu-law → PCM → resample → resample → mu-law, which
is not bit-exact (for ``ulaw_8000`` passthrough the bytes match exactly and the same
matching gives correlation 1).  Each call gets its own seed, so audio crossing between
calls shows up as lost frames, not as a match.  The tone comes last and only serves the
SNR figure; 1004 Hz (not 1000) is the telephony test-tone convention: it is not a
sub-multiple of 8 kHz, so every sample hits a different phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.audio.signals import tone

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms of 8 kHz mu-law: one Twilio media frame
BAND_HZ = (200.0, 3400.0)
TONE_HZ = 1004.0
NOISE_RMS = 5000.0  # about -16 dBFS: loud enough for mu-law SNR, far from clipping
TONE_DBFS = -12.0


@dataclass(frozen=True)
class Probe:
    ulaw: bytes  # what the caller sends, frame after frame
    linear: np.ndarray  # int16 decoding of ``ulaw``: the reference heard audio is matched to
    noise_frames: int  # the first frames: matched one by one
    tone_frames: int  # the last frames: the SNR segment

    @property
    def frames(self) -> int:
        return self.noise_frames + self.tone_frames

    def frame(self, i: int) -> bytes:
        return self.ulaw[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]


def band_noise(samples: int, seed: int) -> np.ndarray:
    """Gaussian noise with a flat spectrum inside ``BAND_HZ`` and nothing outside, as float."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1 / RATE)
    spectrum[(freqs < BAND_HZ[0]) | (freqs > BAND_HZ[1])] = 0
    noise = np.fft.irfft(spectrum, n=samples)
    rms = float(np.sqrt(np.mean(noise**2))) or 1.0
    out: np.ndarray = noise * (NOISE_RMS / rms)
    return out


def make_probe(noise_s: float, tone_s: float, seed: int) -> Probe:
    """A probe of ``noise_s`` seconds of noise then ``tone_s`` seconds of tone, whole frames."""
    if noise_s <= 0 or tone_s < 0:
        raise ValueError("probe needs noise_s > 0 and tone_s >= 0")
    n_noise = max(1, round(noise_s * RATE / FRAME_SAMPLES))
    n_tone = round(tone_s * RATE / FRAME_SAMPLES)
    parts = [band_noise(n_noise * FRAME_SAMPLES, seed)]
    if n_tone:
        parts.append(tone(TONE_HZ, n_tone * FRAME_SAMPLES / RATE, RATE, TONE_DBFS))
    pcm = np.clip(np.concatenate(parts), -32767, 32767).astype("<i2")
    ulaw = ulaw_encode(pcm.tobytes())
    linear = ulaw_to_linear(ulaw)
    return Probe(ulaw=ulaw, linear=linear, noise_frames=n_noise, tone_frames=n_tone)


def ulaw_to_linear(ulaw: bytes) -> np.ndarray:
    return np.frombuffer(ulaw_decode(ulaw), dtype="<i2")
