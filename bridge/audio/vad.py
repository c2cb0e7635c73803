"""When the caller speaks: an energy voice-activity detector on Twilio's 20 ms mu-law frames.

Pure: each frame comes with the time it arrived (any clock), and the detector answers
with at most one event.  No transcription, no model: a frame is speech when its RMS
level is above ``threshold_dbfs`` (:mod:`bridge.audio.signals` convention: a full-scale
sine is 0 dBFS).  Speech starts after ``min_speech_ms`` of consecutive speech frames and
ends after ``hangover_ms`` of consecutive non-speech frames, so a short pause between
words is not an end.  Both events are dated back to the frame that made them true:

* :class:`SpeechStarted` ``at`` the arrival of the first speech frame of the run;
* :class:`SpeechEnded` ``at`` the arrival of the last speech frame: the moment the
  caller stopped speaking, as seen at the bridge (a frame arrives when its 20 ms have
  been spoken, so its arrival is the end of its audio, to within the network's jitter).

So the hangover and the start run delay the *decision*, never the dates, and the dates
are exact to one frame (20 ms).  Cost per frame: two C calls (mu-law → linear, RMS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bridge.audio._audioop import audioop
from bridge.audio.signals import FULL_SCALE

FRAME_MS = 20
_SINE_RMS = FULL_SCALE / math.sqrt(2.0)  # RMS of a full-scale sine: 0 dBFS


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at: float  # arrival time of the first speech frame


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    at: float  # arrival time of the last speech frame: when the caller stopped


VadEvent = SpeechStarted | SpeechEnded


class CallerVad:
    """Energy VAD over mu-law 8 kHz frames (any length; Twilio sends 160 bytes)."""

    __slots__ = (
        "_end_frames",
        "_min_rms",
        "_quiet",
        "_run",
        "_run_start",
        "_start_frames",
        "in_speech",
        "last_speech_at",
    )

    def __init__(
        self,
        *,
        threshold_dbfs: float = -40.0,
        min_speech_ms: int = 60,
        hangover_ms: int = 300,
    ) -> None:
        self._min_rms = _SINE_RMS * 10.0 ** (threshold_dbfs / 20.0)
        self._start_frames = max(1, math.ceil(min_speech_ms / FRAME_MS))
        self._end_frames = max(1, math.ceil(hangover_ms / FRAME_MS))
        self._run = 0  # consecutive speech frames before a start
        self._run_start = 0.0
        self._quiet = 0  # consecutive non-speech frames in speech
        self.in_speech = False
        self.last_speech_at = 0.0  # arrival of the newest speech frame (valid in speech)

    @property
    def quiet_since(self) -> float | None:
        """In speech but silent for some frames: when the caller (maybe) stopped."""
        return self.last_speech_at if self.in_speech and self._quiet else None

    def frame(self, ulaw: bytes, at: float) -> VadEvent | None:
        """One frame that arrived at ``at``."""
        speech = bool(ulaw) and audioop.rms(audioop.ulaw2lin(ulaw, 2), 2) > self._min_rms
        if not self.in_speech:
            if not speech:
                self._run = 0
                return None
            if self._run == 0:
                self._run_start = at
            self._run += 1
            if self._run < self._start_frames:
                return None
            self.in_speech, self._run, self._quiet = True, 0, 0
            self.last_speech_at = at
            return SpeechStarted(self._run_start)
        if speech:
            self._quiet = 0
            self.last_speech_at = at
            return None
        self._quiet += 1
        if self._quiet < self._end_frames:
            return None
        self.in_speech, self._quiet = False, 0
        return SpeechEnded(self.last_speech_at)
