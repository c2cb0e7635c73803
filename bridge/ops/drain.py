"""Graceful drain: stop taking calls, let the live ones finish, then stop.

:class:`Drain` is two things:

* the voice webhook's innermost **admission** (:mod:`bridge.call.admission`): while
  draining every new call is refused with the overflow answer, ``<Reject
  reason="busy">`` or, with ``ops.drain_overflow_number``, a ``<Dial>`` to that number.
  Other admissions (the telephony concurrency caps) wrap it and ask it first;
* the **sequence** :meth:`Drain.run`, which ``bridge serve`` starts on SIGTERM/SIGINT:

  1. mark draining: ``/readyz`` answers 503 and ``bridge_draining`` is 1 from here on,
     and the webhook refuses new calls (above);
  2. wait until no call is live and none is about to start (a webhook answered in the
     last ``STREAM_ARRIVAL_S`` whose stream has not opened yet), or
     ``ops.drain_timeout_s``, or :meth:`force` (a second signal);
  3. if calls remain: each is ended with ``ops.drain_notice`` spoken (an apology
     disposition: ``<Say>`` then ``<Hangup>`` after the stream), and the drain waits
     (bounded) for their streams to close and for Twilio to fetch what comes next;
  4. return: the server stops (uvicorn closes what is left, the app's shutdown closes
     the store and clients) and the process exits 0.

The server keeps serving throughout: webhooks get their overflow answer, ``/metrics``
and ``/readyz`` answer, and Twilio's after-stream requests find their disposition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.call.actions import Apology, EndReason
from bridge.call.admission import Admission, AdmitAll, Refusal
from bridge.call.registry import LiveCalls
from bridge.config import OpsConfig
from bridge.log import log_event
from bridge.metrics import Metrics

logger = logging.getLogger("bridge.ops")

STREAM_ARRIVAL_S = 30.0  # a webhook answered this recently may still open its stream
STREAMS_CLOSE_S = 30.0  # calls ended at the drain timeout: their streams closing
AFTER_STREAM_S = 5.0  # then Twilio fetching the <Connect action> (the spoken notice)
POLL_S = 0.05


@dataclass(frozen=True)
class DrainResult:
    waited_s: float
    ended_at_timeout: int  # calls still live at the timeout, ended with the notice
    forced: bool


class Drain:
    def __init__(
        self,
        cfg: OpsConfig,
        calls: LiveCalls,
        metrics: Metrics,
        inner: Admission | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = cfg
        self.calls = calls
        self.metrics = metrics
        self.inner = inner or AdmitAll()
        self.clock = clock
        self.draining = False
        self.started_at: float | None = None
        self._force = asyncio.Event()
        # ``bridge serve --workers N``: whether a call's stream opened in another worker
        # (its record has a stream), so this one need not wait for it (the webhook and
        # the stream are separate connections: the kernel may give them to different
        # workers).  None: one process, every stream this webhook announced comes here.
        self.streamed_elsewhere: Callable[[str], bool] | None = None

    # -- admission ---------------------------------------------------------------------

    def check(self, to_number: str) -> Refusal | None:
        if self.draining:
            return Refusal("draining", dial=self.cfg.drain_overflow_number)
        return self.inner.check(to_number)

    # -- the sequence ------------------------------------------------------------------

    def begin(self) -> None:
        """Stop admitting calls (idempotent); readiness fails from now on."""
        if self.draining:
            return
        self.draining = True
        self.started_at = self.clock()
        self.metrics.draining.set(1)
        log_event(
            logger,
            "drain.started",
            live_calls=len(self.calls),
            awaiting_streams=self._awaiting(),
            timeout_s=self.cfg.drain_timeout_s,
        )

    def force(self) -> None:
        """Stop waiting for calls to end by themselves (a second signal)."""
        self._force.set()

    def idle(self) -> bool:
        return len(self.calls) == 0 and self._awaiting() == 0

    def _awaiting(self) -> int:
        if self.streamed_elsewhere is None:
            return self.calls.awaiting_streams(STREAM_ARRIVAL_S)
        elsewhere = self.streamed_elsewhere
        return sum(1 for s in self.calls.awaiting_sids(STREAM_ARRIVAL_S) if not elsewhere(s))

    async def run(self) -> DrainResult:
        self.begin()
        assert self.started_at is not None
        deadline = self.started_at + self.cfg.drain_timeout_s
        last_logged = len(self.calls)
        while not self.idle() and not self._force.is_set():
            left = deadline - self.clock()
            if left <= 0:
                break
            if len(self.calls) != last_logged:
                last_logged = len(self.calls)
                log_event(logger, "drain.waiting", live_calls=last_logged)
            try:
                async with asyncio.timeout(min(POLL_S, left)):
                    await self._force.wait()
            except TimeoutError:
                pass
        remaining = list(self.calls)
        if remaining:
            log_event(
                logger,
                "drain.ending_calls",
                logging.WARNING,
                live_calls=len(remaining),
                forced=self._force.is_set(),
                call_sids=[c.call_sid for c in remaining[:50]],
            )
            notice = Apology(self.cfg.drain_notice)
            for call in remaining:
                call.end_call(EndReason.SHUTDOWN, notice, wait_for_playout=False)
            await self._until(lambda: len(self.calls) == 0, STREAMS_CLOSE_S)
            sids = [c.call_sid for c in remaining]
            await self._until(lambda: not any(self.calls.has_next(s) for s in sids), AFTER_STREAM_S)
        result = DrainResult(
            waited_s=round(self.clock() - self.started_at, 3),
            ended_at_timeout=len(remaining),
            forced=self._force.is_set(),
        )
        log_event(
            logger,
            "drain.done",
            waited_s=result.waited_s,
            ended_at_timeout=result.ended_at_timeout,
            forced=result.forced,
        )
        return result

    async def _until(self, done: Callable[[], bool], timeout_s: float) -> None:
        # Polled: the registry has no change notifications, and 20 checks a second of a
        # dict's length cost nothing next to the calls still running.
        end = self.clock() + timeout_s
        for _ in range(int(timeout_s / POLL_S) + 1):
            if done() or self.clock() >= end:
                return
            await asyncio.sleep(POLL_S)
