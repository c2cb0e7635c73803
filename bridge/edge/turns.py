"""Turns for bursts of edge work: spread over event-loop iterations, not run in one.

* :class:`Turns`: CPU-heavy request steps, at most one per iteration.  Parsing and
  signing the largest accepted webhook costs a few milliseconds.  Fifty of them arriving
  together would run back to back in one loop iteration and stall every call's audio
  for their sum; taking turns, each iteration carries at most one, and the media
  callbacks ready meanwhile run between them.  Waiters are served in order.
* :class:`Spread`: small deadline callbacks, at most ``per_iteration`` per iteration.
  Hundreds of connections opened together reach their deadlines together (a 408 and a
  close each), and so do calls opened together (the call driver's timers: a flood of
  streams that never send ``start``): in one iteration that was a 20-40 ms stall
  (bench/edge_flood.py).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable


class Turns:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._busy = False  # a turn was given in this iteration
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def turn(self) -> None:
        """Return when it is this task's turn; run the heavy step right after, no await."""
        if not self._busy and not self._waiters:
            self._give()
            return
        fut = self._loop.create_future()
        self._waiters.append(fut)
        await fut

    def _give(self) -> None:
        self._busy = True
        # Runs in the next iteration: only then may the next turn be given.
        self._loop.call_soon(self._next)

    def _next(self) -> None:
        self._busy = False
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():  # a waiter cancelled meanwhile gives up its place
                fut.set_result(None)
                self._give()
                return


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Turns] = weakref.WeakKeyDictionary()


def turns() -> Turns:
    """The running loop's turns (one queue per loop: tests run many loops)."""
    loop = asyncio.get_running_loop()
    t = _per_loop.get(loop)
    if t is None:
        t = _per_loop[loop] = Turns(loop)
    return t


class Spread:
    def __init__(self, loop: asyncio.AbstractEventLoop, per_iteration: int = 16) -> None:
        self._loop = loop
        self._per_iteration = per_iteration
        self._used = 0  # callbacks run in this iteration
        self._reset_due = False
        self._queue: deque[Callable[[], None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def run(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` now if this iteration has room, else in a later one (in order)."""
        if self._used < self._per_iteration and not self._queue:
            self._used += 1
            self._schedule_reset()
            callback()
            return
        self._queue.append(callback)
        self._schedule_reset()

    def _schedule_reset(self) -> None:
        if not self._reset_due:
            self._reset_due = True
            self._loop.call_soon(self._next_iteration)

    def _next_iteration(self) -> None:
        self._reset_due = False
        self._used = 0
        while self._queue and self._used < self._per_iteration:
            self._used += 1
            self._queue.popleft()()
        if self._queue or self._used:
            self._schedule_reset()


_spreads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Spread] = weakref.WeakKeyDictionary()


def spread() -> Spread:
    """The running loop's :class:`Spread` (one per loop)."""
    loop = asyncio.get_running_loop()
    s = _spreads.get(loop)
    if s is None:
        s = _spreads[loop] = Spread(loop)
    return s
