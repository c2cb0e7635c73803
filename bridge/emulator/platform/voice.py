"""The emulated agent's voice: synthetic utterances and format conversion.

There is no TTS here.  An utterance is a run of "syllables": short harmonic tones
(fundamental 120-240 Hz plus two overtones, all under 1 kHz so they survive 8 kHz
mu-law) under a Hann envelope, with short gaps between them, peaking around -18 dBFS.
It sounds like speech to a VAD and a level meter and nothing like speech to a person,
which is the point: tests can tell it apart from the caller's audio.  The same text
always gives the same samples.

Conversion between an agent's formats uses the audio core (G.711, the streaming
resampler); :class:`FormatConverter` is one direction of one conversation.
"""

from __future__ import annotations

import random

import numpy as np

from bridge.audio.formats import AudioFormat
from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.audio.resampler import StreamingResampler
from bridge.audio.signals import to_pcm16 as samples_to_pcm16
from bridge.audio.signals import tone

LEVEL_DBFS = -18.0
MS_PER_CHAR = 55
MIN_TEXT_MS, MAX_TEXT_MS = 400, 4000


def text_duration_ms(text: str) -> int:
    """How long the emulator takes to "say" ``text``: ~55 ms a character, clamped."""
    return max(MIN_TEXT_MS, min(MAX_TEXT_MS, len(text) * MS_PER_CHAR))


def synth_utterance(ms: int, sample_rate: int, seed: str = "") -> bytes:
    """``ms`` of syllable-shaped tones as 16-bit little-endian PCM at ``sample_rate``."""
    total = sample_rate * ms // 1000
    out = np.zeros(total, dtype=np.float64)
    rng = random.Random(seed)
    pos = 0
    while pos < total:
        n = min(total - pos, sample_rate * rng.randint(120, 220) // 1000)
        f0, seconds = rng.uniform(120.0, 240.0), n / sample_rate
        partials = sum(
            tone(k * f0, seconds, sample_rate, LEVEL_DBFS + gain)
            for k, gain in ((1, -3.0), (2, -11.0), (3, -17.0))
        )
        out[pos : pos + n] = partials * np.hanning(n)
        pos += n + sample_rate * rng.randint(40, 80) // 1000
    return samples_to_pcm16(out)


def to_pcm16(data: bytes, fmt: AudioFormat) -> bytes:
    """Audio in ``fmt`` as 16-bit PCM at the same rate (mu-law decoded)."""
    return ulaw_decode(data) if fmt.encoding == "ulaw" else data


def encode_pcm16(pcm: bytes, fmt: AudioFormat) -> bytes:
    """16-bit PCM already at ``fmt``'s rate, in ``fmt``'s encoding."""
    return ulaw_encode(pcm) if fmt.encoding == "ulaw" else pcm


class FormatConverter:
    """16-bit PCM at ``in_rate`` -> audio in ``target`` (resampled, encoded), streaming."""

    def __init__(self, in_rate: int, target: AudioFormat):
        self.target = target
        self._resampler = StreamingResampler(in_rate, target.sample_rate)
        # Same rate, PCM out, whole samples so far: the input is the output (a loopback
        # agent's every chunk).  An odd byte count hands over to the resampler, which
        # carries the dangling byte, for good.
        self._passthrough = self._resampler.identity and target.encoding == "pcm"

    def process(self, pcm: bytes) -> bytes:
        if self._passthrough:
            if not len(pcm) & 1:
                return bytes(pcm)  # no copy when it is bytes already
            self._passthrough = False
        return encode_pcm16(self._resampler.process(pcm), self.target)

    def convert_all(self, pcm: bytes) -> bytes:
        """A whole utterance: process plus the resampler's tail, then a clean state."""
        out = self._resampler.process(pcm) + self._resampler.flush()
        self._resampler.reset()
        return encode_pcm16(out, self.target)
