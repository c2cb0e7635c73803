"""Twilio callbacks of the calls the bridge places, and the admin route that places them.

==================================  ====================================================
``POST /twilio/outbound-status``    status callback of an outbound call: progress
                                    (queued → ringing → in-progress → completed / busy
                                    / no-answer / failed) recorded, never backwards
``POST /twilio/amd``                asynchronous answering-machine verdict (AnsweredBy)
``POST /admin/calls``               place a call (mounted inside the admin API)
==================================  ====================================================

The Twilio callbacks are signature-checked exactly like the call bridge's own
(:func:`bridge.http.signed_form`).
"""

from __future__ import annotations

import logging
import math

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.admin.decode import check_unknown_params, decode_body
from bridge.admin.models import OutboundCall
from bridge.errors import BridgeError
from bridge.http import error_response, json_response, signed_form
from bridge.log import log_event
from bridge.telephony.dialer import AMD_PATH, OUTBOUND_STATUS_PATH, Dialer, RateLimited
from bridge.telephony.features import Telephony
from bridge.telephony.voicemail import ANSWERED_BY
from bridge.twilio.status import FINAL_STATUSES, status_update

logger = logging.getLogger("bridge.telephony")


class TelephonyEndpoints:
    def __init__(self, telephony: Telephony, dialer: Dialer):
        self.telephony = telephony
        self.dialer = dialer

    async def _form(self, request: Request) -> dict[str, str] | Response:
        services = self.dialer.services
        return await signed_form(request, services.config, services.metrics)

    def twilio_routes(self) -> list[BaseRoute]:
        return [
            Route(OUTBOUND_STATUS_PATH, self.outbound_status, methods=["POST"]),
            Route(AMD_PATH, self.amd, methods=["POST"]),
        ]

    def admin_routes(self) -> list[BaseRoute]:
        """For ``admin_routes(..., extra_routes=...)``: inside the admin auth and errors."""
        return [Route("/calls", self.place_call, methods=["POST"])]

    async def place_call(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        req = decode_body(await request.body(), OutboundCall)
        try:
            result = await self.dialer.dial(req)
        except RateLimited as e:
            retry = str(max(1, math.ceil(e.retry_after_s)))
            return error_response(429, e.field, e.problem, {"Retry-After": retry})
        return json_response(result, 201)

    async def outbound_status(self, request: Request) -> Response:
        params = await self._form(request)
        if isinstance(params, Response):
            return params
        sid, reported = params.get("CallSid", ""), params.get("CallStatus", "")
        log_event(
            logger,
            "telephony.outbound_status",
            call_sid=sid or None,
            status=reported,
            sip_code=params.get("SipResponseCode"),
            duration=params.get("CallDuration"),
        )
        store = self.dialer.services.store
        if not sid or store is None:
            return Response(status_code=204)
        if reported in FINAL_STATUSES:
            self.telephony.capacity.release(sid)
            if self.dialer.shared is not None:
                self.dialer.shared.release(sid)  # its slot, if it never became a stream
        try:
            rec = store.get_call(sid)
            fields = status_update(
                rec.status if rec else None, rec.end_reason if rec else None, params
            )
            if fields is not None:
                store.update_call(sid, **fields)
        except BridgeError as e:
            log_event(logger, "telephony.record_failed", logging.ERROR, call_sid=sid, error=str(e))
        return Response(status_code=204)

    async def amd(self, request: Request) -> Response:
        params = await self._form(request)
        if isinstance(params, Response):
            return params
        sid, value = params.get("CallSid", ""), params.get("AnsweredBy", "")
        if not sid or value not in ANSWERED_BY:
            log_event(
                logger,
                "telephony.amd_bad_request",
                logging.WARNING,
                call_sid=sid or None,
                answered_by=value[:40],
            )
            return Response("expected CallSid and a known AnsweredBy", 400)
        self.telephony.answered_by(sid, value)
        return Response(status_code=204)
