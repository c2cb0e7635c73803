"""Concurrency caps: may the bridge take (or place) one more call on this number?

The voice webhook asks its admission (:mod:`bridge.call.admission`) before answering
with a stream; :class:`CapacityAdmission` is that admission when
``telephony.max_concurrent_calls`` / ``max_concurrent_calls_per_number`` are set.  Past
a cap the caller gets ``telephony.over_capacity``: a busy signal (``<Reject
reason="busy">``: unanswered, so not billed, and the carrier plays busy) or
``over_capacity_message`` spoken, then a hang-up.  The dialer asks the same object
before placing an outbound call (429 when the from-number is full), and every stream
asks again when it starts (:meth:`CapacityAdmission.admit_stream`, from
:mod:`bridge.call.stream_gate`): a stream opened without the webhook is counted too.

Pure bookkeeping, clock passed in: no I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.call.admission import Admission, AdmitAll, Refusal
from bridge.call.registry import LiveCalls
from bridge.config import TelephonyConfig
from bridge.log import log_event

logger = logging.getLogger("bridge.telephony")

Clock = Callable[[], float]


@dataclass
class _Hold:
    number: str
    at: float
    ttl_s: float
    call_sid: str | None


class CapacityAdmission:
    """Global and per-number caps on calls at once, as the webhook's admission.

    A call counts from the moment it is admitted: live calls (streams running, from
    :class:`~bridge.call.registry.LiveCalls`) plus *holds*: calls the webhook admitted
    or the dialer placed whose stream has not started yet.  A hold ends when the stream
    starts (:meth:`admit_stream`), when an outbound call ends unanswered
    (:meth:`release`), or after its time to live (the caller hung up while it was
    ringing).  The ``inner`` admission (e.g. draining) is asked first by the webhook;
    never at stream start (a call admitted before a drain may still start).
    """

    def __init__(
        self,
        cfg: TelephonyConfig,
        calls: LiveCalls,
        inner: Admission | None = None,
        *,
        clock: Clock = time.monotonic,
        hold_ttl_s: float = 15.0,
    ):
        self.cfg = cfg
        self.calls = calls
        self.inner = inner or AdmitAll()
        self.clock = clock
        self.hold_ttl_s = hold_ttl_s
        self._holds: list[_Hold] = []

    def _expire(self, now: float) -> None:
        self._holds = [h for h in self._holds if now - h.at < h.ttl_s]

    def count(self, number: str | None = None) -> int:
        self._expire(self.clock())
        if number is None:
            return len(self.calls) + len(self._holds)
        held = sum(1 for h in self._holds if h.number == number)
        return self.calls.count_for(number) + held

    def refusal(self, number: str) -> Refusal | None:
        """Why a new call on ``number`` would exceed a cap (None: it fits)."""
        cfg = self.cfg
        scope = None
        if cfg.max_concurrent_calls and self.count() >= cfg.max_concurrent_calls:
            scope = f"global cap {cfg.max_concurrent_calls}"
        elif cfg.max_concurrent_calls_per_number and (
            self.count(number) >= cfg.max_concurrent_calls_per_number
        ):
            scope = f"cap {cfg.max_concurrent_calls_per_number} on {number}"
        if scope is None:
            return None
        return self.over_capacity(number, scope)

    def over_capacity(self, number: str, scope: str) -> Refusal:
        """The answer to a call past a cap (``scope`` names it, for the log)."""
        cfg = self.cfg
        log_event(logger, "telephony.over_capacity", logging.WARNING, number=number, cap=scope)
        if cfg.over_capacity == "message":
            return Refusal("over_capacity", message=cfg.over_capacity_message)
        return Refusal("over_capacity", reject_reason="busy")

    def check(self, to_number: str) -> Refusal | None:
        refused = self.inner.check(to_number)
        if refused is not None:
            return refused
        refused = self.refusal(to_number)
        if refused is None:
            self._holds.append(_Hold(to_number, self.clock(), self.hold_ttl_s, None))
        return refused

    def admit_stream(self, to_number: str, call_sid: str) -> Refusal | None:
        """A stream started: its own hold ends, then it must fit beside the others."""
        self.started(to_number, call_sid)
        return self.refusal(to_number)

    def hold(self, number: str, call_sid: str, ttl_s: float) -> None:
        """An outbound call was placed: it counts while it rings."""
        self._holds.append(_Hold(number, self.clock(), ttl_s, call_sid))

    def started(self, number: str, call_sid: str) -> None:
        """A stream started: its hold (by SID, else the oldest on the number) ends."""
        for i, h in enumerate(self._holds):
            if h.call_sid == call_sid:
                del self._holds[i]
                return
        for i, h in enumerate(self._holds):
            if h.call_sid is None and h.number == number:
                del self._holds[i]
                return

    def release(self, call_sid: str) -> None:
        self._holds = [h for h in self._holds if h.call_sid != call_sid]
