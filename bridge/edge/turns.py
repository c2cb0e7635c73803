"""Turns for CPU-heavy request steps: at most one per event-loop iteration.

Parsing and signing the largest accepted webhook costs a few milliseconds.  Fifty of
them arriving together would run back to back in one loop iteration and stall every
call's audio for their sum; taking turns, each iteration carries at most one, and the
media callbacks ready meanwhile run between them.  Waiters are served in order.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque


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
