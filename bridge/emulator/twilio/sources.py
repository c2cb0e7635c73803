"""Audio a synthetic caller can speak: 8 kHz mu-law bytes, computed once (pure).

Each source returns the whole utterance as ``bytes``; a script slices 160-byte frames
out of it, so hundreds of calls can share one buffer without copying or recomputing.
Levels are RMS dBFS (a full-scale sine is 0 dBFS), as in :mod:`bridge.audio.signals`.

* :func:`silence`, :func:`tone`, :func:`beep` (the voicemail beep);
* :func:`speech_like`: noise band-limited to the telephone band (300–3400 Hz) under a
  syllable-rate envelope (about 4 syllables/s with short gaps), which is what voice
  activity detectors and barge-in logic key on, and deterministic for a given ``seed``;
* :func:`wav_to_ulaw` / :func:`wav_file`: a RIFF/WAVE file, 16-bit PCM (any rate, any
  channel count: mixed to mono, resampled with the bridge's own resampler) or mu-law.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from bridge.audio.g711 import ulaw_encode
from bridge.audio.resampler import StreamingResampler
from bridge.audio.signals import FULL_SCALE, to_pcm16, tone_pcm16
from bridge.errors import AudioFormatError

RATE = 8000
SILENCE_BYTE = 0xFF
_PCM = 1
_MULAW = 7
_EXTENSIBLE = 0xFFFE


def _samples(seconds: float) -> int:
    if not (math.isfinite(seconds) and seconds >= 0):
        raise AudioFormatError(f"duration must be a finite number >= 0, got {seconds!r}")
    return round(seconds * RATE)


def silence(seconds: float) -> bytes:
    return bytes([SILENCE_BYTE]) * _samples(seconds)


def tone(freq_hz: float, seconds: float, dbfs: float = -10.0) -> bytes:
    """A sine at ``dbfs`` peak level (``bridge.audio.signals.tone``), as mu-law."""
    _samples(seconds)
    return ulaw_encode(tone_pcm16(freq_hz, seconds, RATE, dbfs))


def beep(seconds: float = 0.5, freq_hz: float = 1000.0) -> bytes:
    """The answering-machine beep that ends a voicemail greeting."""
    return tone(freq_hz, seconds, dbfs=-6.0)


def speech_like(
    seconds: float, *, seed: int = 0, dbfs: float = -18.0, syllable_hz: float = 4.0
) -> bytes:
    """Band-limited noise under a syllable envelope: speech to a VAD, not to a listener."""
    n = _samples(seconds)
    if n == 0:
        return b""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / RATE)
    spectrum[(freqs < 300.0) | (freqs > 3400.0)] = 0.0
    noise = np.fft.irfft(spectrum, n)
    env = np.zeros(n)
    pos = 0
    mean_syllable = RATE / syllable_hz
    while pos < n:
        length = int(mean_syllable * rng.uniform(0.6, 1.0))
        gap = int(mean_syllable * rng.uniform(0.1, 0.4))
        seg = min(length, n - pos)
        # Raised-cosine syllable with its own loudness, as stressed/unstressed syllables.
        env[pos : pos + seg] = rng.uniform(0.5, 1.0) * np.sin(np.pi * np.arange(seg) / length) ** 2
        pos += length + gap
    x = noise * env
    r = float(np.sqrt(np.mean(x * x)))
    if r > 0:
        x *= (FULL_SCALE / math.sqrt(2.0)) * 10.0 ** (dbfs / 20.0) / r
    return ulaw_encode(to_pcm16(x))


def wav_to_ulaw(data: bytes) -> bytes:
    """A RIFF/WAVE file's audio as 8 kHz mono mu-law."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError("expected a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise AudioFormatError("WAVE fmt chunk shorter than 16 bytes")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]  # sub-format GUID's first field
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise AudioFormatError("WAVE data chunk before its fmt chunk")
            return _convert(body, *fmt)
        pos += 8 + size + (size & 1)  # chunks are word aligned
    raise AudioFormatError("WAVE file has no data chunk")


def wav_file(path: str | Path) -> bytes:
    return wav_to_ulaw(Path(path).read_bytes())


def _convert(body: bytes, tag: int, channels: int, rate: int, bits: int) -> bytes:
    if channels < 1 or not 1000 <= rate <= 384_000:
        raise AudioFormatError(f"WAVE: unusable channels={channels} rate={rate}")
    if tag == _MULAW and bits == 8 and channels == 1 and rate == RATE:
        return body
    if tag != _PCM or bits != 16:
        raise AudioFormatError(
            f"WAVE: expected 16-bit PCM or 8 kHz mono mu-law, got format {tag}, {bits} bits"
        )
    frame = 2 * channels
    samples = np.frombuffer(body, dtype="<i2", count=len(body) // frame * channels)
    mono = samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples
    pcm = to_pcm16(mono)
    if rate != RATE:
        rs = StreamingResampler(rate, RATE)
        pcm = rs.process(pcm) + rs.flush()
    return ulaw_encode(pcm)
