"""Call time: the monotonic clock scaled by a speed factor, and pacing without drift.

Everything the synthetic caller records is in call-time seconds since the call began:
``(monotonic() - t0) * speed``.  At ``speed=1`` that is wall time; at 20× a 10-second
call runs in half a second and still reports 10 seconds of media, so scripts, playout
and recordings mean the same at any speed.  Frame ``k`` is due at call time
``k * 20 ms`` exactly: deadlines come from the frame index, never from the previous
timer, so pacing does not drift when the loop runs late (it catches up instead).
"""

from __future__ import annotations

import asyncio
import math
import time

from bridge.errors import InputError

MAX_SPEED = 1000.0


def check_speed(speed: float) -> float:
    if not (isinstance(speed, int | float) and math.isfinite(speed) and 0 < speed <= MAX_SPEED):
        raise InputError("speed", f"expected a number in (0, {MAX_SPEED:g}], got {speed!r}")
    return float(speed)


class CallClock:
    def __init__(self, speed: float = 1.0, t0: float | None = None) -> None:
        self.speed = check_speed(speed)
        self.t0 = time.monotonic() if t0 is None else t0

    def now(self) -> float:
        """Call time, in call seconds."""
        return (time.monotonic() - self.t0) * self.speed

    def monotonic_at(self, t: float) -> float:
        """The ``time.monotonic()`` value at which call time ``t`` comes.

        That is also the event loop's time base (``loop.time()`` is ``time.monotonic()``
        under asyncio, the same clock in 1 ms steps under uvloop): ``loop.call_at`` takes it.
        """
        return self.t0 + t / self.speed

    def wall(self, call_seconds: float) -> float:
        """How long ``call_seconds`` of call time lasts on the wall clock."""
        return call_seconds / self.speed

    async def sleep(self, call_seconds: float) -> None:
        if call_seconds > 0:
            await asyncio.sleep(call_seconds / self.speed)


def frame_due(start: float, k: int, frame_s: float = 0.02) -> float:
    """Call time at which frame ``k`` of a stream that started at ``start`` is due."""
    return start + k * frame_s
