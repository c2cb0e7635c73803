"""Call limits (pure, clock passed in): maximum duration, caller silence, concurrency caps.

* :class:`DurationLimit`: warns the agent ``duration_warning_s`` before
  ``max_call_duration_s`` (so it can wrap up, as a contextual update), then ends the call.
* :class:`SilenceWatch`: ends the call when no caller audio reached
  ``silence_threshold_dbfs`` for ``silence_timeout_s``.  Twilio sends media frames even
  when the caller says nothing (line noise or digital silence), so "no frames" is not
  the signal: the energy in them is.

Concurrency caps are :class:`bridge.telephony.capacity.CapacityAdmission`.

Each watcher exposes ``deadline()`` (when its driver should next call ``poll``, or
None) and ``poll(now)`` (what happened), so one timer per call can serve all of them.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from bridge.audio._audioop import audioop

LimitName = Literal["max_duration", "silence"]


@dataclass(frozen=True)
class DurationWarning:
    remaining_s: float
    text: str


@dataclass(frozen=True)
class LimitReached:
    limit: LimitName
    after_s: float  # call time when the limit struck (duration) or silence length (silence)


LimitEvent = DurationWarning | LimitReached


def warning_text(remaining_s: float) -> str:
    secs = max(1, round(remaining_s))
    return (
        f"This call reaches its maximum length in about {secs} seconds and will then be "
        "ended automatically. Wrap up the conversation politely now."
    )


class DurationLimit:
    """Max call duration; ``max_s`` 0 disables it (then ``deadline`` is always None)."""

    def __init__(self, max_s: float, warn_s: float, started_at: float):
        self.max_s = max_s
        self.started_at = started_at
        self.warn_at = started_at + max(0.0, max_s - warn_s) if max_s > 0 and warn_s > 0 else None
        self.end_at = started_at + max_s if max_s > 0 else None
        self._warned = False
        self._ended = False

    def deadline(self) -> float | None:
        if self.end_at is None or self._ended:
            return None
        if self.warn_at is not None and not self._warned and self.warn_at < self.end_at:
            return self.warn_at
        return self.end_at

    def poll(self, now: float) -> list[LimitEvent]:
        out: list[LimitEvent] = []
        if self.end_at is None or self._ended:
            return out
        if (
            self.warn_at is not None
            and not self._warned
            and now >= self.warn_at
            and now < self.end_at
        ):
            self._warned = True
            remaining = self.end_at - now
            out.append(DurationWarning(remaining, warning_text(remaining)))
        if now >= self.end_at:
            self._ended = True
            out.append(LimitReached("max_duration", now - self.started_at))
        return out


FULL_SCALE: Final = 32768.0
_BIG_ENDIAN: Final = sys.byteorder == "big"


def rms_dbfs(pcm: npt.ArrayLike | bytes) -> float:
    """RMS level of 16-bit samples (an array, or little-endian PCM bytes) relative to
    full scale (a full-scale sine is -3 dBFS here, unlike
    :func:`bridge.audio.signals.level_dbfs`); -inf for digital silence.

    Bytes take audioop's C ``rms`` (the per-frame hot path: ~1 µs instead of numpy's ~10).
    """
    if isinstance(pcm, bytes):
        if _BIG_ENDIAN:
            pcm = audioop.byteswap(pcm, 2)
        rms = float(audioop.rms(pcm, 2)) if len(pcm) >= 2 else 0.0
    else:
        x = np.asarray(pcm, dtype=np.float64)
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return -math.inf if rms == 0 else 20 * math.log10(rms / FULL_SCALE)


class SilenceWatch:
    """Caller silence; ``timeout_s`` 0 disables it."""

    def __init__(self, timeout_s: float, threshold_dbfs: float, started_at: float):
        self.timeout_s = timeout_s
        self.threshold_dbfs = threshold_dbfs
        self.last_voice = started_at
        self._ended = False

    def heard(self, level: float, now: float) -> None:
        """Caller audio of ``level`` dBFS arrived at ``now``."""
        if level >= self.threshold_dbfs:
            self.last_voice = max(self.last_voice, now)

    def heard_pcm(self, pcm: npt.ArrayLike, now: float) -> None:
        self.heard(rms_dbfs(pcm), now)

    def deadline(self) -> float | None:
        if self.timeout_s <= 0 or self._ended:
            return None
        return self.last_voice + self.timeout_s

    def poll(self, now: float) -> list[LimitEvent]:
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        self._ended = True
        return [LimitReached("silence", now - self.last_voice)]
