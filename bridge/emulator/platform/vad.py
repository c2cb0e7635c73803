"""Energy voice-activity detection on 16-bit PCM, in audio time.

Pure and deterministic: frames of 20 ms are speech when their RMS level is above a
threshold; an utterance starts after ``min_speech_ms`` of consecutive speech frames
(the frames that triggered it are part of the utterance) and ends after
``end_silence_ms`` of consecutive non-speech frames (trailing silence is trimmed).  All
timing is in samples received, so unit tests need no clock; the conversation adds a
wall-clock cut-off for callers that stop sending audio altogether.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from bridge.audio._audioop import audioop
from bridge.audio.signals import FULL_SCALE

FRAME_MS = 20
_SINE_RMS = FULL_SCALE / math.sqrt(2.0)  # RMS of a full-scale sine: 0 dBFS
_BIG_ENDIAN = sys.byteorder == "big"


@dataclass(frozen=True)
class SpeechStarted:
    at_ms: int  # audio time of the first speech frame


@dataclass(frozen=True)
class SpeechEnded:
    at_ms: int  # audio time just after the last speech frame
    audio: bytes  # the utterance, PCM16 at the detector's sample rate

    def duration_ms(self, sample_rate: int) -> int:
        return len(self.audio) * 1000 // (2 * sample_rate)


VadEvent = SpeechStarted | SpeechEnded


def frame_dbfs(pcm: bytes) -> float:
    """Level of a PCM16 frame in dBFS, :mod:`bridge.audio.signals` convention (a
    full-scale sine is 0 dBFS); -inf for digital silence.

    audioop's C ``rms`` rather than numpy: this runs for every 20 ms of every call the
    emulator serves, and numpy's per-call overhead was most of the emulator's CPU time.
    """
    usable = pcm[: len(pcm) - len(pcm) % 2]
    if not usable:
        return -math.inf
    if _BIG_ENDIAN:  # audioop works in native byte order
        usable = audioop.byteswap(usable, 2)
    return _level_dbfs(audioop.rms(usable, 2))


def _level_dbfs(rms: int) -> float:
    return 20.0 * math.log10(rms / _SINE_RMS) if rms > 0 else -math.inf


def min_speech_rms(threshold_dbfs: float) -> int:
    """The smallest integer RMS whose level is above ``threshold_dbfs``, by exactly the
    formula of :func:`frame_dbfs`: the per-frame test becomes one integer comparison."""
    rms = max(1, int(_SINE_RMS * 10.0 ** (threshold_dbfs / 20.0)) - 2)
    while _level_dbfs(rms) <= threshold_dbfs:
        rms += 1
    while rms > 1 and _level_dbfs(rms - 1) > threshold_dbfs:
        rms -= 1
    return rms


class EnergyVad:
    def __init__(
        self,
        sample_rate: int,
        *,
        threshold_dbfs: float = -40.0,
        min_speech_ms: int = 60,
        end_silence_ms: int = 500,
        max_utterance_ms: int = 30_000,
    ):
        self.sample_rate = sample_rate
        self.threshold_dbfs = threshold_dbfs
        self._min_rms = min_speech_rms(threshold_dbfs)
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * 2
        self._start_frames = max(1, math.ceil(min_speech_ms / FRAME_MS))
        self._end_frames = max(1, math.ceil(end_silence_ms / FRAME_MS))
        self._max_frames = max(1, max_utterance_ms // FRAME_MS)
        self._pending = b""
        self._frames_seen = 0
        self._speech_run: list[bytes] = []  # consecutive speech frames before a start
        self._utterance: list[bytes] = []
        self._silence_run = 0
        self.in_speech = False

    @property
    def audio_ms(self) -> int:
        """Audio time consumed so far (whole frames)."""
        return self._frames_seen * FRAME_MS

    def process(self, pcm: bytes) -> list[VadEvent]:
        size = self._frame_bytes
        if not self._pending and len(pcm) == size:  # the usual case: one whole frame
            event = self._frame(bytes(pcm))
            return [] if event is None else [event]
        data = self._pending + pcm
        usable = len(data) - len(data) % size
        self._pending = data[usable:]
        events: list[VadEvent] = []
        for off in range(0, usable, size):
            event = self._frame(data[off : off + size])
            if event is not None:
                events.append(event)
        return events

    def end_now(self) -> SpeechEnded | None:
        """Close an utterance in progress (the caller went quiet on the wire)."""
        if not self.in_speech:
            return None
        return self._finish(trim=self._silence_run)

    def _frame(self, frame: bytes) -> VadEvent | None:
        self._frames_seen += 1
        # frame_dbfs(frame) > threshold_dbfs, as an integer comparison.
        speech = audioop.rms(audioop.byteswap(frame, 2) if _BIG_ENDIAN else frame, 2) >= (
            self._min_rms
        )
        if not self.in_speech:
            if not speech:
                self._speech_run.clear()
                return None
            self._speech_run.append(frame)
            if len(self._speech_run) < self._start_frames:
                return None
            self.in_speech = True
            self._utterance = self._speech_run
            self._speech_run = []
            self._silence_run = 0
            return SpeechStarted(at_ms=(self._frames_seen - len(self._utterance)) * FRAME_MS)
        self._utterance.append(frame)
        self._silence_run = 0 if speech else self._silence_run + 1
        if self._silence_run >= self._end_frames:
            return self._finish(trim=self._silence_run)
        if len(self._utterance) >= self._max_frames:
            return self._finish(trim=self._silence_run)
        return None

    def _finish(self, trim: int) -> SpeechEnded:
        kept = self._utterance[: len(self._utterance) - trim] if trim else self._utterance
        self.in_speech = False
        self._utterance = []
        self._silence_run = 0
        return SpeechEnded(at_ms=(self._frames_seen - trim) * FRAME_MS, audio=b"".join(kept))
