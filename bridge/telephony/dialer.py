"""Placing outbound calls: ``POST /admin/calls`` and ``bridge calls dial`` end here.

:meth:`Dialer.dial` validates (the pure part: :mod:`bridge.telephony.outbound`), takes a
token from the from-number's rate limit (429 past it), checks the concurrency caps,
then creates the call with Twilio REST: the ``Twiml`` is the same
``<Connect><Stream>`` an inbound call gets, carrying the call context as
``<Parameter>`` s, so when the callee answers the stream comes back to this bridge
and runs like any call.  Twilio's status callbacks go to :data:`OUTBOUND_STATUS_PATH`
(progress recorded, never backwards) and, with machine detection, the verdict to
:data:`AMD_PATH` (asynchronous AMD: the conversation is not held up while Twilio
listens).  The call SID is returned at once; the call record (``direction:
outbound``, ``status: queued``) is written before returning, so ``GET /admin/calls``
shows it immediately.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from bridge.admin.models import DialResult, OutboundCall
from bridge.call.services import CallServices
from bridge.errors import BridgeError, ConfigError, InputError
from bridge.http import AFTER_STREAM_PATH, STREAM_STATUS_PATH
from bridge.log import log_event
from bridge.store.rates import Hit
from bridge.store.records import CallRecord
from bridge.telephony.features import Telephony
from bridge.telephony.outbound import (
    RateLimiter,
    check_twiml_size,
    resolve,
    stream_parameters,
)
from bridge.telephony.shared_limits import SharedLimits
from bridge.twilio import responses, stream_token

logger = logging.getLogger("bridge.telephony")

OUTBOUND_STATUS_PATH: Final = "/twilio/outbound-status"
AMD_PATH: Final = "/twilio/amd"
STATUS_EVENTS: Final = ("initiated", "ringing", "answered", "completed")
RING_MARGIN_S: Final = 15.0  # a placed call holds its capacity slot this long past ringing


class RateLimited(InputError):
    """Too many calls from one number (HTTP 429); ``retry_after_s`` says when to retry."""

    def __init__(self, number: str, retry_after_s: float):
        self.retry_after_s = retry_after_s
        super().__init__(
            "from",
            f"{number} is placing calls faster than telephony.outbound_calls_per_second; "
            f"retry in {retry_after_s:.2f} s",
            status=429,
        )


class Dialer:
    def __init__(
        self,
        services: CallServices,
        telephony: Telephony,
        *,
        shared: SharedLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.services = services
        self.telephony = telephony
        self.shared = shared  # deployment-wide caps and rate (None: this process's)
        cfg = telephony.cfg
        self.limiter = RateLimiter(cfg.outbound_calls_per_second, cfg.outbound_burst)
        self._clock = clock

    async def dial(self, req: OutboundCall) -> DialResult:
        s, t = self.services, self.telephony
        store = s.store
        if store is None:
            raise ConfigError("store.db", "no store is open", "a call-record store")
        rest = s.twilio_rest
        if rest is None:
            raise ConfigError(
                "twilio.account_sid",
                "Twilio REST credentials are not configured",
                "twilio.account_sid and twilio.auth_token",
            )
        call = resolve(
            req,
            store.get_number,
            default_agent_id=s.config.platform.default_agent_id,
            ring_timeout_s=t.cfg.ring_timeout_s,
        )
        # Each limit is the deployment's (in the store) unless shared limits are off or
        # the store did not answer; then this process's.
        slot = await self.shared.dial_slot(call.from_number) if self.shared else None
        refusal = slot[1] if slot is not None else t.capacity.refusal(call.from_number)
        if refusal is not None:
            raise InputError(
                "from", f"{call.from_number} is at its concurrent-call cap", status=429
            )
        hit = await self.shared.dial_rate(call.from_number) if self.shared else None
        wait = (
            hit.wait_s
            if hit is not None
            else self.limiter.try_acquire(call.from_number, self._clock())
        )
        if wait > 0:
            if slot is not None and self.shared is not None:
                await self.shared.placed(slot[0], None, 0.0)
            log_event(
                logger, "telephony.dial_rate_limited", logging.WARNING, number=call.from_number
            )
            raise RateLimited(call.from_number, wait)
        tw = s.config.twilio
        # Twilio names the call only once it is created: the token binds everything
        # else (account, parameters, expiry) and is single use (bridge.twilio.stream_token).
        parameters = stream_token.signed_parameters(
            tw.stream_key,
            stream_parameters(call),
            call_sid=None,
            account_sid=tw.account_sid or "",
            now=time.time(),
            ttl_s=tw.stream_token_ttl_s + call.ring_timeout_s,
        )
        twiml = check_twiml_size(
            responses.connect_stream(
                s.stream_url,
                parameters,
                action_url=s.public(AFTER_STREAM_PATH),
                status_callback=s.public(STREAM_STATUS_PATH),
            )
        )
        try:
            sid = await rest.create_call(
                to=req.to,
                from_=call.from_number,
                twiml=twiml,
                status_callback=s.public(OUTBOUND_STATUS_PATH),
                status_callback_events=STATUS_EVENTS,
                timeout_s=call.ring_timeout_s,
                machine_detection=req.machine_detection,
                amd_callback=s.public(AMD_PATH) if req.machine_detection else None,
            )
        except BridgeError:
            await self._refund(call.from_number, hit)
            if slot is not None and self.shared is not None:
                await self.shared.placed(slot[0], None, 0.0)
            raise
        if slot is not None and self.shared is not None:
            await self.shared.placed(slot[0], sid, call.ring_timeout_s + RING_MARGIN_S)
        else:
            t.capacity.hold(call.from_number, sid, call.ring_timeout_s + RING_MARGIN_S)
        s.calls.expect(sid)  # the stream's start updates this record, not a new one
        store.record_call(
            CallRecord(
                call_sid=sid,
                direction="outbound",
                from_number=call.from_number,
                to_number=req.to,
                agent_id=call.agent_id,
                status="queued",
            )
        )
        log_event(
            logger,
            "telephony.dialed",
            call_sid=sid,
            to=req.to,
            from_number=call.from_number,
            agent_id=call.agent_id,
            machine_detection=req.machine_detection,
        )
        return DialResult(
            call_sid=sid, status="queued", to=req.to, from_=call.from_number, agent_id=call.agent_id
        )

    async def _refund(self, number: str, hit: Hit | None) -> None:
        """Give back the rate token of a call that was not placed after all."""
        if hit is not None and self.shared is not None:
            await self.shared.dial_refund(number)
        elif hit is None:
            self.limiter.refund(number)
