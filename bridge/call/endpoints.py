"""The Twilio-facing routes: what operators point Twilio at.  Keep these paths stable.

==============================  ==========================================================
``POST /twilio/inbound``        voice webhook: admission, routing, ``<Connect><Stream>``
``WS   /twilio/media``          the media stream: one CallSession per connection
``POST /twilio/after-stream``   the ``<Connect action>``: what the call does after the stream
``POST /twilio/status``         call status callback (set on the number): recorded
``POST /twilio/stream-status``  stream status callback (set in the TwiML): recorded
==============================  ==========================================================

Every request is checked against ``X-Twilio-Signature`` when signatures are enforced,
over the configured public URL (never the proxied ``Host``): webhooks over the URL and
every form parameter, the WebSocket upgrade over the ``wss://`` stream URL alone.  A bad
signature gets 403 (the upgrade: HTTP 403 instead of 101), a log line and a metric.

The upgrade signature is the same for every call, so it admits nobody in particular:
the TwiML of each call carries a stream token bound to that call
(:mod:`bridge.twilio.stream_token`), checked when the stream starts
(:mod:`bridge.call.stream_gate`, on the session's ``start``): a stream whose start does
not carry a valid, unused token for its call is closed with 1008.
"""

from __future__ import annotations

import logging
import time
import typing
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from bridge.call.actions import HANGUP, to_twiml
from bridge.call.admission import Refusal
from bridge.call.driver import CallDriver
from bridge.call.services import CallServices
from bridge.errors import BridgeError
from bridge.http import (
    AFTER_STREAM_PATH,
    INBOUND_PATH,
    MEDIA_PATH,
    STATUS_PATH,
    STREAM_STATUS_PATH,
)
from bridge.http import signed_form as _signed_form
from bridge.log import log_event
from bridge.store.records import CallRecord, CallStatus
from bridge.twilio import responses as twiml
from bridge.twilio import stream_token
from bridge.twilio.signature import is_valid_ws_upgrade
from bridge.twilio.status import FINAL_STATUSES, status_update
from bridge.ws.asgi_socket import AsgiSocket
from bridge.ws.server import direct_socket

logger = logging.getLogger("bridge.twilio")

_CALL_STATUSES = frozenset(typing.get_args(CallStatus))


def twilio_routes() -> list[BaseRoute]:
    return [
        Route(INBOUND_PATH, inbound, methods=["POST"]),
        WebSocketRoute(MEDIA_PATH, media_stream),
        Route(AFTER_STREAM_PATH, after_stream, methods=["POST"]),
        Route(STATUS_PATH, call_status, methods=["POST"]),
        Route(STREAM_STATUS_PATH, stream_status, methods=["POST"]),
    ]


def _services(conn: Request | WebSocket) -> CallServices:
    services: CallServices = conn.app.state.services
    return services


def _xml(body: str) -> Response:
    return Response(body, media_type=twiml.TWIML_CONTENT_TYPE)


async def _form(request: Request) -> dict[str, str] | Response:
    services = _services(request)
    return await _signed_form(request, services.config, services.metrics)


# --------------------------------------------------------------------------- voice webhook


async def inbound(request: Request) -> Response:
    services = _services(request)
    params = await _form(request)
    if isinstance(params, Response):
        return params
    call_sid = params.get("CallSid", "")
    if not call_sid:
        log_event(
            logger, "twilio.bad_request", logging.WARNING, path=INBOUND_PATH, problem="no CallSid"
        )
        return PlainTextResponse("CallSid missing", 400)
    # On a call the bridge placed (outbound-api), our number is From and the other party To.
    outbound = params.get("Direction", "inbound").startswith("outbound")
    ours = params.get("From" if outbound else "To", "")
    theirs = params.get("To" if outbound else "From", "")
    fields: dict[str, Any] = {"call_sid": call_sid, "called_number": ours, "caller_id": theirs}
    webhooks = services.metrics.webhooks_total

    refusal = services.admission.check(ours)
    if refusal is not None:
        return _refused(services, refusal, fields)

    route = services.routing.route(ours)
    if route is None:
        webhooks.labels("unrouted").inc()
        log_event(logger, "call.unrouted", logging.WARNING, **fields)
        return _xml(twiml.say_and_hangup(services.config.calls.apology_text))
    if services.reservation is not None:
        # A slot of the deployment-wide caps, taken in the store off the event loop.
        refusal = await services.reservation.reserve(ours, call_sid)
        if refusal is not None:
            return _refused(services, refusal, fields)

    services.calls.expect(call_sid)
    if services.store is not None:
        status = params.get("CallStatus", "ringing")
        try:
            services.store.record_call(
                CallRecord(
                    call_sid=call_sid,
                    direction="outbound" if outbound else "inbound",
                    from_number=params.get("From") or None,
                    to_number=params.get("To") or None,
                    agent_id=route.agent_id,
                    status=status if status in _CALL_STATUSES else "ringing",  # type: ignore[arg-type]
                )
            )
        except BridgeError as e:
            log_event(logger, "call.record_failed", logging.ERROR, call_sid=call_sid, error=str(e))
    webhooks.labels("stream").inc()
    log_event(logger, "call.routed", agent_id=route.agent_id, route=route.source, **fields)
    tw, rec = services.config.twilio, services.config.recording
    # The stream must show this token to be believed (bridge.twilio.stream_token).
    parameters = stream_token.signed_parameters(
        tw.stream_key,
        {"agent_id": route.agent_id, "caller_id": theirs, "called_number": ours},
        call_sid=call_sid,
        account_sid=params.get("AccountSid", ""),
        now=time.time(),
        ttl_s=tw.stream_token_ttl_s,
    )
    return _xml(
        twiml.connect_stream(
            services.stream_url,
            parameters,
            action_url=services.public(AFTER_STREAM_PATH),
            status_callback=services.public(STREAM_STATUS_PATH),
            # Callers told before the agent speaks (docs/recording.md: the legal point).
            notice=rec.notice if rec.enabled or route.record else None,
        )
    )


def _refused(services: CallServices, refusal: Refusal, fields: dict[str, Any]) -> Response:
    services.metrics.webhooks_total.labels("refused").inc()
    services.metrics.refused_total.labels(refusal.reason).inc()
    log_event(logger, "call.refused", reason=refusal.reason, dial=refusal.dial, **fields)
    if refusal.dial:
        return _xml(twiml.dial(refusal.dial))
    if refusal.message:
        return _xml(twiml.say_and_hangup(refusal.message))
    return _xml(twiml.reject(refusal.reject_reason))


async def after_stream(request: Request) -> Response:
    """Twilio asks what to do now that the stream is closed: the session decided."""
    services = _services(request)
    params = await _form(request)
    if isinstance(params, Response):
        return params
    call_sid = params.get("CallSid", "")
    disposition = services.calls.pop_next(call_sid) if call_sid else None
    log_event(
        logger,
        "call.after_stream",
        call_sid=call_sid or None,
        then=type(disposition).__name__.lower() if disposition else "hangup (nothing recorded)",
    )
    return _xml(to_twiml(disposition or HANGUP))


# --------------------------------------------------------------------------- callbacks


async def call_status(request: Request) -> Response:
    services = _services(request)
    params = await _form(request)
    if isinstance(params, Response):
        return params
    call_sid, status = params.get("CallSid", ""), params.get("CallStatus", "")
    log_event(
        logger,
        "twilio.call_status",
        call_sid=call_sid or None,
        status=status,
        duration=params.get("CallDuration"),
        sip_code=params.get("SipResponseCode"),
    )
    if services.reservation is not None and call_sid and status in FINAL_STATUSES:
        services.reservation.release(call_sid)  # a call that ended before its stream
    if services.store is not None and call_sid:
        store_id = services.store.instance
        try:
            rec = services.store.get_call(call_sid)
            fields = status_update(
                rec.status if rec else None, rec.end_reason if rec else None, params
            )
            if fields is not None and rec is not None and rec.instance not in (None, store_id):
                # Another instance handles the stream and records why the call ended;
                # its write may not have landed yet, and Twilio's "completed" must not
                # take its place.  (A dead owner's calls are closed by the sweep.)
                fields.pop("end_reason", None)
            if fields is not None:
                services.store.update_call(call_sid, **fields)
        except BridgeError as e:
            log_event(logger, "call.record_failed", logging.ERROR, call_sid=call_sid, error=str(e))
    return Response(status_code=204)


async def stream_status(request: Request) -> Response:
    params = await _form(request)
    if isinstance(params, Response):
        return params
    event = params.get("StreamEvent", "")
    log_event(
        logger,
        "twilio.stream_status",
        logging.WARNING if event == "stream-error" else logging.INFO,
        call_sid=params.get("CallSid"),
        stream_sid=params.get("StreamSid"),
        stream_event=event,
        stream_error=params.get("StreamError") or None,
    )
    return Response(status_code=204)


# --------------------------------------------------------------------------- media stream


async def media_stream(ws: WebSocket) -> None:
    services = _services(ws)
    tw = services.config.twilio
    if tw.signatures_enforced:
        assert tw.auth_token is not None
        if not is_valid_ws_upgrade(
            tw.auth_token, services.stream_url, ws.headers.get("x-twilio-signature")
        ):
            services.metrics.signature_failures_total.labels(MEDIA_PATH).inc()
            log_event(
                logger,
                "twilio.signature_invalid",
                logging.WARNING,
                path=MEDIA_PATH,
                signed_url=services.stream_url,
                has_signature="x-twilio-signature" in ws.headers,
            )
            await ws.close(code=1008)  # before accept: the upgrade is answered with 403
            return
    await ws.accept()
    # The relay's fast path when served by our uvicorn class; plain ASGI otherwise.
    sock = direct_socket(ws.scope) or AsgiSocket(ws)
    await CallDriver(sock, services).run()
