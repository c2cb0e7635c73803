"""The webhook worker: queue a delivery per receiver when a call ends, send, retry.

Nothing here runs on a call's path.  The driver's end-of-call hook,
:meth:`WebhookDispatcher.call_ended`, appends the call SID to a bounded in-memory inbox
and returns; a background task (started with the app, :meth:`WebhookDispatcher.running`)
does the rest:

1. **enqueue**: reads the final call record and the extras (transcript, latency,
   recording) in a worker thread, builds one signed-to-be document per URL and inserts
   the rows (:mod:`bridge.store.deliveries`).  From here on the store holds the state;
   SIDs still in the inbox at shutdown are written before the app stops.
2. **dispatch**: picks due rows, claims each atomically (several instances sharing one
   PostgreSQL database never send the same attempt twice) and POSTs it with a total
   timeout, at most ``max_concurrent`` at once.  2xx = delivered; anything else is
   retried with exponential backoff and jitter (:mod:`bridge.webhooks.backoff`) until
   ``retry_for_s`` after the call, then failed.  The response body is never read, so a
   receiver cannot hold memory.
3. polls the store every :data:`POLL_INTERVAL_S` (retries that came due, admin
   retries, rows another instance enqueued), and wakes at once for local work.

A slow or failing receiver costs at most one slot per attempt and ``timeout_s``; calls
never wait for it.  Logs name the receiver by scheme, host and path (a query string may
carry a receiver's token) and never the signing secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final
from urllib.parse import urlsplit

import httpx
import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge

from bridge.config import WebhooksConfig
from bridge.errors import BridgeError, ConfigError
from bridge.log import log_event
from bridge.store import Store
from bridge.store.deliveries import DeliveryState, DueDelivery, NewDelivery
from bridge.webhooks import payload, signature
from bridge.webhooks.backoff import retry_delay
from bridge.webhooks.payload import NO_EXTRAS, CallExtras, ExtrasProvider

logger = logging.getLogger("bridge.webhooks")

POLL_INTERVAL_S: Final = 1.0
# An attempt's claim outlives its timeout by this much before another worker may take it.
LEASE_MARGIN_S: Final = 30.0
MAX_INBOX: Final = 10_000  # ended calls waiting to be enqueued (the store is down)
DELIVERY_HEADER: Final = "Bridge-Delivery"
USER_AGENT: Final = "bridge-webhooks/1"


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.deliveries_total = Counter(
            "bridge_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retry, failed)",
            ["outcome"],
            registry=r,
        )
        self.in_flight = Gauge(
            "bridge_webhook_in_flight", "Webhook deliveries being sent now", registry=r
        )
        self.dropped_total = Counter(
            "bridge_webhook_dropped",
            "Ended calls not queued for webhooks because the in-memory inbox was full",
            registry=r,
        )


def receiver_label(url: str) -> str:
    """The URL as logs may show it: no user info, query string or fragment."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname or ''}{f':{u.port}' if u.port else ''}{u.path}"


def new_delivery_id() -> str:
    return "whd_" + secrets.token_hex(12)


class WebhookDispatcher:
    """Post-call webhooks for one bridge instance (see the module docstring)."""

    def __init__(
        self,
        cfg: WebhooksConfig,
        store: Store,
        *,
        registry: CollectorRegistry | None = None,
        extras: ExtrasProvider | None = None,
        poll_interval_s: float = POLL_INTERVAL_S,
        draw: Callable[[], float] = random.random,
    ):
        if cfg.urls and cfg.secret is None:  # load_config refuses this; direct use too
            raise ConfigError("webhooks.secret", "is not set", "required with webhooks.urls")
        self._cfg = cfg
        self._secret = cfg.secret or ""
        self._store = store
        self._extras = extras
        self._poll_s = poll_interval_s
        self._draw = draw
        self.metrics = WebhookMetrics(registry)
        self._inbox: deque[str] = deque()
        self._overflowing = False
        self._wake = asyncio.Event()
        self._sending: dict[asyncio.Task[None], DueDelivery] = {}
        self._store_failing = False

    # -- the call path's side: never blocks ---------------------------------------

    def call_ended(self, call_sid: str) -> None:
        """A call's record is final: queue its deliveries (returns at once)."""
        if not self._cfg.urls or not call_sid:
            return
        if len(self._inbox) >= MAX_INBOX:
            self.metrics.dropped_total.inc()
            if not self._overflowing:
                self._overflowing = True
                log_event(
                    logger,
                    "webhooks.inbox_full",
                    logging.ERROR,
                    call_sid=call_sid,
                    max_inbox=MAX_INBOX,
                    note="the store is not accepting deliveries; webhooks of calls are lost",
                )
            return
        self._overflowing = False
        self._inbox.append(call_sid)
        self._wake.set()

    def wake(self) -> None:
        """Look for due deliveries now (an admin retry), not at the next poll."""
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the worker while the app runs; at exit, persist what the inbox holds.

        Attempts still in flight at exit are abandoned and their claims released, so
        the next instance to look sends them at once (a crash leaves the claim, which
        then lapses after its lease).
        """
        timeout = httpx.Timeout(self._cfg.timeout_s)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            task = asyncio.create_task(self._run(client), name="webhooks")
            try:
                yield
            finally:
                task.cancel()
                sending = dict(self._sending)
                for t in sending:
                    t.cancel()
                await asyncio.gather(task, *sending, return_exceptions=True)
                interrupted = [d for t, d in sending.items() if t.cancelled()]
                await asyncio.to_thread(self._stop, interrupted)

    def _stop(self, interrupted: Sequence[DueDelivery]) -> None:
        """At shutdown (worker thread): persist the inbox, release interrupted claims."""
        try:
            if self._inbox:
                self._enqueue_inbox()
            now = time.time()
            for d in interrupted:
                self._store.finish_delivery(
                    d, state="pending", next_attempt_at=now, error="interrupted: bridge stopped"
                )
        except BridgeError as e:
            log_event(
                logger,
                "webhooks.stop_unsaved",
                logging.ERROR,
                error=str(e),
                unqueued_calls=len(self._inbox),
                note="interrupted deliveries are sent again when their claims lapse",
            )

    async def _run(self, client: httpx.AsyncClient) -> None:
        log_event(
            logger,
            "webhooks.started",
            receivers=[receiver_label(u) for u in self._cfg.urls],
            retry_for_s=self._cfg.retry_for_s,
        )
        while True:
            self._wake.clear()
            try:
                if self._inbox:
                    await asyncio.to_thread(self._enqueue_inbox)
                await self._dispatch_due(client)
                self._store_ok()
            except BridgeError as e:  # the store is failing: keep everything, try later
                self._store_error(e)
            except Exception as e:  # a bug: say so loudly, and keep the worker alive
                log_event(
                    logger,
                    "webhooks.worker_error",
                    logging.ERROR,
                    error=f"{type(e).__name__}: {e}",
                    traceback="".join(traceback.format_exception(e)),
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()

    def _store_ok(self) -> None:
        if self._store_failing:
            self._store_failing = False
            log_event(logger, "webhooks.store_recovered")

    def _store_error(self, e: BridgeError) -> None:
        if not self._store_failing:
            self._store_failing = True
            log_event(
                logger,
                "webhooks.store_failing",
                logging.ERROR,
                error=str(e),
                note="deliveries wait in memory and in the store; retried",
            )

    # -- enqueue (worker thread) ----------------------------------------------------

    def _enqueue_inbox(self) -> None:
        sids: list[str] = []
        while self._inbox:
            sids.append(self._inbox.popleft())
        try:
            self._store.enqueue_deliveries(self._new_deliveries(sids))
        except BridgeError:
            self._inbox.extendleft(reversed(sids))  # keep them for the next round
            raise

    def _new_deliveries(self, sids: Sequence[str]) -> list[NewDelivery]:
        out: list[NewDelivery] = []
        for sid in sids:
            rec = self._store.get_call(sid)
            if rec is None:
                log_event(logger, "webhooks.unknown_call", logging.WARNING, call_sid=sid)
                continue
            extras = self._call_extras(sid)
            now = time.time()
            for url in self._cfg.urls:
                did = new_delivery_id()
                try:
                    body = payload.build(did, now, rec, extras)
                except (TypeError, msgspec.EncodeError) as e:  # extras it cannot encode
                    self._extras_failed(sid, e)
                    extras = NO_EXTRAS
                    body = payload.build(did, now, rec, extras)
                out.append(
                    NewDelivery(
                        id=did,
                        call_sid=sid,
                        url=url,
                        payload=body.decode(),
                        created_at=now,
                        retry_until=now + self._cfg.retry_for_s,
                    )
                )
        return out

    def _extras_failed(self, call_sid: str, e: Exception) -> None:
        log_event(
            logger,
            "webhooks.extras_failed",
            logging.ERROR,
            call_sid=call_sid,
            error=f"{type(e).__name__}: {e}",
            note="delivered without transcript, latency and recording URL",
        )

    def _call_extras(self, call_sid: str) -> CallExtras:
        if self._extras is None:
            return NO_EXTRAS
        try:
            return self._extras(call_sid)
        except Exception as e:  # a feature's bug must not cost the call its webhook
            self._extras_failed(call_sid, e)
            return NO_EXTRAS

    # -- dispatch ---------------------------------------------------------------------

    async def _dispatch_due(self, client: httpx.AsyncClient) -> None:
        free = self._cfg.max_concurrent - len(self._sending)
        if free <= 0:
            return
        now = time.time()
        due = await asyncio.to_thread(self._store.due_deliveries, now, free)
        lease = now + self._cfg.timeout_s + LEASE_MARGIN_S
        for d in due:
            if not await asyncio.to_thread(self._store.claim_delivery, d, now, lease):
                continue  # another instance took it
            task = asyncio.create_task(self._attempt(client, d), name=f"webhook-{d.id}")
            self._sending[task] = d
            self.metrics.in_flight.set(len(self._sending))
            task.add_done_callback(self._attempt_done)

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._sending.pop(task, None)
        self.metrics.in_flight.set(len(self._sending))
        if not task.cancelled() and (e := task.exception()) is not None:
            log_event(
                logger, "webhooks.attempt_crashed", logging.ERROR, error=f"{type(e).__name__}: {e}"
            )
        self._wake.set()  # a slot is free

    async def _attempt(self, client: httpx.AsyncClient, d: DueDelivery) -> None:
        status, error = await self._post(client, d)
        now = time.time()
        attempt = d.attempts + 1
        state: DeliveryState
        if status is not None and 200 <= status < 300:
            outcome, state, next_at = "delivered", "delivered", now
        elif now >= d.retry_until:
            outcome, state, next_at = "failed", "failed", now
        else:
            wait = retry_delay(
                attempt, self._cfg.backoff_base_s, self._cfg.backoff_max_s, self._draw()
            )
            outcome, state, next_at = "retry", "pending", min(now + wait, d.retry_until)
            # Due then: wake for it rather than wait for the next poll.
            asyncio.get_running_loop().call_later(next_at - now, self._wake.set)
        self.metrics.deliveries_total.labels(outcome).inc()
        try:
            await asyncio.to_thread(
                self._store.finish_delivery,
                d,
                state=state,
                next_attempt_at=next_at,
                status=status,
                error=error,
                delivered_at=now if state == "delivered" else None,
            )
        except BridgeError as e:
            # The claim's lease ends and the delivery is tried again: at least once.
            self._store_error(e)
        log_event(
            logger,
            f"webhooks.{outcome}",
            logging.INFO if outcome != "failed" else logging.ERROR,
            delivery_id=d.id,
            receiver=receiver_label(d.url),
            attempt=attempt,
            status=status,
            error=error,
            next_attempt_in_s=round(next_at - now, 3) if outcome == "retry" else None,
        )

    async def _post(
        self, client: httpx.AsyncClient, d: DueDelivery
    ) -> tuple[int | None, str | None]:
        body = d.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            DELIVERY_HEADER: d.id,
            signature.HEADER: signature.sign(self._secret, body, int(time.time())),
        }
        try:
            # One bound on the whole attempt: httpx's timeout is per phase.
            async with (
                asyncio.timeout(self._cfg.timeout_s),
                client.stream("POST", d.url, content=body, headers=headers) as resp,
            ):
                status = resp.status_code
        except TimeoutError:
            return None, f"timed out after {self._cfg.timeout_s:g} s"
        except httpx.TimeoutException:
            return None, f"timed out after {self._cfg.timeout_s:g} s"
        except httpx.HTTPError as e:
            return None, f"{type(e).__name__}: {e}"[:500]
        return status, None if 200 <= status < 300 else f"HTTP {status}"
