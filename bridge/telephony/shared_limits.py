"""The limits of the whole deployment: caps, stream-token single use and outbound rates,
held in the store every instance and worker shares.

:class:`SharedLimits` takes the place of the per-process caps
(:class:`~bridge.telephony.capacity.CapacityAdmission`) when ``telephony.shared_limits``
is on (``auto``: unless the store is ``:memory:``):

* **webhook**: the admission chain (drain, …) first, then — once the call is routed —
  :meth:`reserve` takes a slot in the store (:mod:`bridge.store.slots`) in a worker
  thread, so the event loop never waits on the database;
* **stream start** (:mod:`bridge.call.stream_gate`): :meth:`claim_stream` claims the
  verified token in the store (:mod:`bridge.store.claims`; the gate's per-process memory
  is the first, free check) and :meth:`admit_stream` turns the call's reservation into
  this instance's live slot, or takes one.  These run on the event loop inside the
  session's synchronous start check: one short transaction, bounded by
  ``telephony.shared_limits_timeout_s``;
* **call end**: the slot is released (:meth:`release`, in a thread); live slots are on
  a lease this instance renews (:meth:`running`), so a dead instance's slots expire;
* **outbound**: :meth:`dial_slot` / :meth:`dial_rate` for the dialer.

When the store does not answer in time (or is down), each check falls back to what
this process knows — the per-process caps, the per-process token memory, the
per-process token bucket — and says so in the log (``limits.store_unavailable``, then
``limits.store_recovered``): calls keep being answered rather than all refused.  During
such a fallback each instance admits up to the cap on its own (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Final

from bridge.call.admission import Refusal
from bridge.call.registry import LiveCalls
from bridge.config import Config
from bridge.errors import StoreError
from bridge.log import log_event
from bridge.store import Store, claims, rates
from bridge.store.slots import CallSlots, Caps, Scope
from bridge.telephony.capacity import CapacityAdmission

logger = logging.getLogger("bridge.telephony")

RESERVE_MARGIN_S: Final = 5.0  # a reservation outlives its stream token by this much
LEASE_S: Final = 60.0  # a live slot not renewed for this long is free (its owner died)
RENEW_EVERY_S: Final = 20.0
PRUNE_EVERY_S: Final = 300.0  # expired stream claims and rate windows
_NO_CALL_LIMIT_S: Final = 4 * 3600.0


def enabled(config: Config) -> bool:
    """Whether ``telephony.shared_limits`` is on for this config."""
    mode = config.telephony.shared_limits
    return mode == "on" or (mode == "auto" and config.store.db != ":memory:")


class SharedLimits:
    """Admission (webhook), reservation, stream admission and token claims in one place."""

    def __init__(
        self,
        config: Config,
        store: Store,
        local: CapacityAdmission,
        calls: LiveCalls,
        *,
        wall: Callable[[], float] = time.time,
    ):
        tel = config.telephony
        self.caps = Caps(tel.max_concurrent_calls, tel.max_concurrent_calls_per_number)
        self.store = store
        self.local = local
        self.calls = calls
        self.wall = wall
        self.timeout_s = tel.shared_limits_timeout_s
        self.slots = CallSlots(store, timeout_s=self.timeout_s)
        self.reserve_ttl_s = config.twilio.stream_token_ttl_s + RESERVE_MARGIN_S
        self.claim_retain_s = tel.max_call_duration_s or _NO_CALL_LIMIT_S
        self.dial_rate_per_s = tel.outbound_calls_per_second
        self.dial_burst = tel.outbound_burst
        self._down = False
        self._down_lock = threading.Lock()

    @property
    def capped(self) -> bool:
        return bool(self.caps.total or self.caps.per_number)

    # -- the store's health, as seen by these checks ---------------------------------

    def _failed(self, what: str, e: BaseException) -> None:
        with self._down_lock:
            was, self._down = self._down, True
        if not was:
            log_event(
                logger,
                "limits.store_unavailable",
                logging.WARNING,
                check=what,
                error=f"{type(e).__name__}: {e}",
                note="caps, token single use and rate limits count this process only",
            )

    def _ok(self) -> None:
        with self._down_lock:
            was, self._down = self._down, False
        if was:
            log_event(logger, "limits.store_recovered")

    def _answer(self, number: str, scope: Scope) -> Refusal:
        cap = (
            f"global cap {self.caps.total} (deployment)"
            if scope == "global"
            else f"cap {self.caps.per_number} on {number} (deployment)"
        )
        return self.local.over_capacity(number, cap)

    # -- webhook ---------------------------------------------------------------------

    def check(self, to_number: str) -> Refusal | None:
        """The admission chain before the caps (drain, …); the caps are :meth:`reserve`."""
        return self.local.inner.check(to_number)

    async def reserve(self, to_number: str, call_sid: str) -> Refusal | None:
        if not self.capped:
            return None
        try:
            scope = await asyncio.wait_for(
                asyncio.to_thread(
                    self.slots.reserve,
                    call_sid,
                    to_number,
                    self.caps,
                    now=self.wall(),
                    ttl_s=self.reserve_ttl_s,
                ),
                # The thread's own waits are bounded by timeout_s; this bounds the rest.
                2 * self.timeout_s,
            )
        except (StoreError, TimeoutError) as e:
            self._failed("reserve", e)
            refused = self.local.refusal(to_number)
            if refused is None:
                self.local.hold(to_number, call_sid, self.reserve_ttl_s)
            return refused
        self._ok()
        return None if scope is None else self._answer(to_number, scope)

    # -- stream start (synchronous: the session's start check) ------------------------

    def claim_stream(self, call_sid: str, token_mac: str, expires_at: float) -> bool:
        try:
            claimed = claims.claim(
                self.store,
                token_mac,
                call_sid,
                expires_at=expires_at + self.claim_retain_s,
                now=self.wall(),
                timeout_s=self.timeout_s,
            )
        except StoreError as e:
            self._failed("stream_claim", e)
            return True  # the per-process memory (checked first) is all there is
        self._ok()
        return claimed

    def admit_stream(self, to_number: str, call_sid: str) -> Refusal | None:
        self.local.started(to_number, call_sid)  # a fallback hold, if the webhook made one
        if not self.capped:
            return None
        try:
            scope = self.slots.claim(
                call_sid, to_number, self.caps, now=self.wall(), lease_s=LEASE_S
            )
        except StoreError as e:
            self._failed("stream_slot", e)
            return self.local.refusal(to_number)
        self._ok()
        return None if scope is None else self._answer(to_number, scope)

    # -- call end and leases ---------------------------------------------------------

    def release(self, call_sid: str) -> None:
        """A live call ended here (``LiveCalls.on_removed``): free its slot, off the loop."""
        if not self.capped:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._release(call_sid)
            return
        # (the loop's executor already shut down: the slot's lease runs out instead)
        with contextlib.suppress(RuntimeError):
            loop.run_in_executor(None, self._release, call_sid)

    def _release(self, call_sid: str) -> None:
        try:
            self.slots.release([call_sid])
        except StoreError as e:
            self._failed("release", e)  # the slot's lease runs out instead

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Renew this instance's leases and prune expired claims while the app runs."""
        task = asyncio.create_task(self._maintain(), name="shared-limits")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _maintain(self) -> None:
        pruned_at = 0.0
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            now = self.wall()
            try:
                sids = [c.call_sid for c in self.calls]
                if sids and self.capped:
                    await asyncio.to_thread(self.slots.renew, sids, now=now, lease_s=LEASE_S)
                if now - pruned_at >= PRUNE_EVERY_S:
                    await asyncio.to_thread(self.slots.prune, now=now)
                    await asyncio.to_thread(claims.prune, self.store, now=now, timeout_s=5.0)
                    await asyncio.to_thread(rates.prune, self.store, now=now, timeout_s=5.0)
                    pruned_at = now
            except StoreError as e:
                self._failed("renew", e)

    # -- outbound --------------------------------------------------------------------

    async def dial_slot(self, from_number: str) -> tuple[str, Refusal | None] | None:
        """A slot for a call about to be placed, under a provisional key (:meth:`placed`
        renames it to the call SID); None: the store did not answer (fall back)."""
        if not self.capped:
            return ("", None)
        key = f"dial-{uuid.uuid4().hex}"
        try:
            scope = await asyncio.wait_for(
                asyncio.to_thread(
                    self.slots.reserve,
                    key,
                    from_number,
                    self.caps,
                    now=self.wall(),
                    ttl_s=self.reserve_ttl_s,
                ),
                2 * self.timeout_s,
            )
        except (StoreError, TimeoutError) as e:
            self._failed("dial_slot", e)
            return None
        self._ok()
        return key, (None if scope is None else self._answer(from_number, scope))

    async def placed(self, key: str, call_sid: str | None, ring_s: float) -> None:
        """The call was created (its slot now named by ``call_sid``, held while it
        rings) or not (``None``: the slot is freed)."""
        if not key:
            return
        try:
            if call_sid is None:
                await asyncio.to_thread(self.slots.release, [key])
            else:
                await asyncio.to_thread(
                    self.slots.rename, key, call_sid, expires_at=self.wall() + ring_s
                )
        except StoreError as e:
            self._failed("dial_slot", e)  # the provisional slot expires by itself

    async def dial_rate(self, from_number: str) -> rates.Hit | None:
        """One outbound call from ``from_number`` counted deployment-wide; None: the
        store did not answer (the dialer's own token bucket decides)."""
        try:
            hit = await asyncio.wait_for(
                asyncio.to_thread(
                    rates.hit,
                    self.store,
                    f"dial:{from_number}",
                    rate=self.dial_rate_per_s,
                    burst=self.dial_burst,
                    now=self.wall(),
                    timeout_s=self.timeout_s,
                ),
                2 * self.timeout_s,
            )
        except (StoreError, TimeoutError) as e:
            self._failed("dial_rate", e)
            return None
        self._ok()
        return hit

    async def dial_refund(self, from_number: str) -> None:
        with contextlib.suppress(StoreError):
            await asyncio.to_thread(
                rates.refund,
                self.store,
                f"dial:{from_number}",
                rate=self.dial_rate_per_s,
                timeout_s=self.timeout_s,
            )
