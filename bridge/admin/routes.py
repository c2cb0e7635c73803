"""The admin HTTP API under ``/admin``: thin handlers over :class:`~bridge.admin.service.Provisioning`.

Mounted as a small Starlette sub-app so it has its own bearer-token check, body size
limit and error handlers, and adds nothing to the call paths of the bridge.  When no
token is configured the API is not mounted at all (``/admin/...`` is then a plain 404
of the main app), and that is logged at start.

Every failure answers ``{"error": {"field": ..., "message": ...}}``:

* 400 unreadable body or query parameter, 401 missing/wrong token, 404 unknown id,
  409 duplicate or wrong state, 413 body too large, 422 a field that does not fit,
  429 too many failed authentications from the client's address (``Retry-After``);
* 502 an upstream (platform or Twilio) failed: ``upstream`` carries its service,
  status, message and request id, never credentials;
* 503 the store is failing, or the bridge lacks the configuration for the operation;
* a multi-step operation that failed part way adds ``rollback`` (steps undone / still
  done) to the failed step's own error.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from bridge.admin import models
from bridge.admin.decode import (
    check_unknown_params,
    decode_body,
    query_bool,
    query_int,
    query_str,
)
from bridge.admin.openapi import openapi_document
from bridge.admin.service import Provisioning
from bridge.admin.throttle import FailureThrottle, client_key
from bridge.call.transcript import render_text
from bridge.config import AdminConfig
from bridge.errors import (
    BridgeError,
    ConfigError,
    InputError,
    PartialFailure,
    StoreError,
    TwilioApiError,
    UpstreamError,
)
from bridge.http import error_response, json_response
from bridge.log import log_event
from bridge.metrics import Metrics
from bridge.store.store import MAX_PAGE

logger = logging.getLogger("bridge.admin")

PREFIX: Final = "/admin"
MAX_BODY_BYTES: Final = 64 * 1024
URL_PATTERN: Final = r"^https?://[^\s/?#]+[^\s]*$"

_encoder = msgspec.json.Encoder()


# ---------------------------------------------------------------------------- errors


def _upstream(e: UpstreamError) -> models.UpstreamInfo:
    return models.UpstreamInfo(
        service="twilio" if isinstance(e, TwilioApiError) else "platform",
        status=e.status,
        message=e.message,
        request_id=e.request_id,
        code=e.code,
    )


def _describe(e: BridgeError) -> tuple[int, dict[str, Any]]:
    """HTTP status and ErrorInfo fields for a deliberate error."""
    if isinstance(e, InputError):
        return e.status, {"field": e.field, "message": e.problem}
    if isinstance(e, UpstreamError):
        who = "Twilio" if isinstance(e, TwilioApiError) else "the Agents Platform"
        return 502, {"field": None, "message": f"{who} failed: {e}", "upstream": _upstream(e)}
    if isinstance(e, StoreError):
        return 503, {"field": None, "message": f"store unavailable: {e}"}
    if isinstance(e, ConfigError):
        return 503, {"field": None, "message": f"the bridge is not configured for this: {e}"}
    if isinstance(e, PartialFailure):
        status, info = _describe(e.cause)
        info["message"] = str(e)
        info["rollback"] = models.Rollback(undone=e.undone, left_done=e.left_done)
        return status, info
    return 500, {"field": None, "message": str(e)}


async def _bridge_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BridgeError)
    status, info = _describe(exc)
    log_event(
        logger,
        "admin.request_failed",
        level=logging.WARNING if status < 500 else logging.ERROR,
        method=request.method,
        path=request.url.path,
        status=status,
        field=info.get("field"),
        error=info["message"],
    )
    return error_response(status, **info)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, None, exc.detail, dict(exc.headers or {}))


# ---------------------------------------------------------------------------- auth


_MAX_ACCEPT_RANGES: Final = 20  # a client's Accept header is read this far, no further


def prefers_text(accept: str) -> bool:
    """Whether ``accept`` ranks ``text/plain`` above JSON (RFC 9110 q-values; a tie,
    or no preference at all, is JSON)."""

    def quality(media_type: str) -> float:
        best, best_rank = 0.0, -1
        top, _, _ = media_type.partition("/")
        for item in accept.split(",")[:_MAX_ACCEPT_RANGES]:
            name, *params = (p.strip() for p in item.split(";"))
            name = name.lower()
            rank = (
                2 if name == media_type else 1 if name == f"{top}/*" else 0 if name == "*/*" else -1
            )
            if rank <= best_rank:
                continue
            q = 1.0
            for p in params:
                key, _, value = p.partition("=")
                if key.strip().lower() == "q":
                    try:
                        q = float(value)
                    except ValueError:
                        q = 0.0
            best, best_rank = q, rank
        return best

    return quality("text/plain") > quality("application/json")


class BearerAuth:
    """Refuse every request without ``Authorization: Bearer <token>`` (constant-time check).

    Failed attempts are counted per client address (:class:`FailureThrottle`); an
    address past ``admin.auth_failures_per_minute`` gets 429 with ``Retry-After`` before
    its token is even looked at.  Only HTTP gets through: a WebSocket under ``/admin``
    is closed unaccepted (the server answers 403), anything else is dropped.
    """

    def __init__(self, app: ASGIApp, token: str, throttle: FailureThrottle, metrics: Metrics):
        self.app = app
        self._token = token.encode()
        self._throttle = throttle
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            log_event(
                logger,
                "admin.refused_scope",
                level=logging.WARNING,
                scope=scope["type"],
                path=scope.get("path"),
            )
            if scope["type"] == "websocket":
                await WebSocketClose(code=1008)(scope, receive, send)
            return
        client = scope.get("client")
        key = client_key(client[0] if client else None)
        wait = self._throttle.retry_after(key)
        if wait is not None:
            self._metrics.admin_auth_throttled_total.inc()
            seconds = max(1, math.ceil(wait))
            response = error_response(
                429,
                "authorization",
                f"too many failed admin authentications from this address; retry in {seconds} s",
                {"Retry-After": str(seconds)},
            )
            await response(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, presented = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode("latin-1"), self._token
        )
        if ok:
            await self.app(scope, receive, send)
            return
        self._metrics.admin_auth_failures_total.inc()
        blocked = self._throttle.failed(key)
        log_event(
            logger,
            "admin.unauthorized",
            level=logging.WARNING,
            path=scope.get("path"),
            client=key,
            had_token=bool(presented),
            throttled_now=blocked,
        )
        response = error_response(
            401,
            "authorization",
            "a valid admin token is required: Authorization: Bearer <BRIDGE_ADMIN_TOKEN>",
            {"WWW-Authenticate": 'Bearer realm="bridge-admin"'},
        )
        await response(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with the API's JSON 413.

    (Starlette's own limit answers in plain text.)  A declared Content-Length over the
    limit is refused before reading; a chunked body is counted as it is read and the
    handler's read fails with InputError("body", …, 413).
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = f"is larger than {self.max_bytes} bytes"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, "body", problem)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise InputError("body", problem, status=413)
            return message

        await self.app(scope, counted, send)


# ---------------------------------------------------------------------------- handlers

Handler = Callable[[Request], Awaitable[Response]]


def recording_response(service: Provisioning, call_sid: str) -> FileResponse:
    """The call's WAV (the admin API's and the console's); Range requests (206, 416) are
    FileResponse's own.  InputError (404) when the call has no recording."""
    path = service.recording_file(call_sid)
    return FileResponse(
        path, media_type="audio/wav", filename=f"{call_sid}.wav", content_disposition_type="inline"
    )


class AdminEndpoints:
    """One method per route; each decodes, calls the service, encodes."""

    def __init__(self, service: Provisioning, document: dict[str, Any]):
        self.svc = service
        self._document = _encoder.encode(document)

    async def openapi(self, request: Request) -> Response:
        return Response(self._document, media_type="application/json")

    # -- numbers

    async def list_numbers(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        return json_response(models.NumberList(items=self.svc.list_numbers()))

    async def import_number(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        req = decode_body(await request.body(), models.ImportNumber)
        result = await self.svc.import_number(req)
        return json_response(result, 201)

    async def get_number(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        return json_response(self.svc.get_number(request.path_params["id"]))

    async def update_number(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        req = decode_body(await request.body(), models.UpdateNumber)
        return json_response(await self.svc.update_number(request.path_params["id"], req))

    async def delete_number(self, request: Request) -> Response:
        q = request.query_params
        check_unknown_params(q, ("restore_voice_url",))
        restore = query_str(q, "restore_voice_url", URL_PATTERN)
        result = await self.svc.delete_number(request.path_params["id"], restore_voice_url=restore)
        return json_response(result)

    # -- agents

    async def list_agents(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        return json_response(models.AgentList(items=await self.svc.list_agents()))

    async def create_agent(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        req = decode_body(await request.body(), models.CreateAgent)
        return json_response(await self.svc.create_agent(req), 201)

    # -- calls

    async def list_calls(self, request: Request) -> Response:
        q = request.query_params
        check_unknown_params(q, ("live", "number", "agent_id", "limit", "cursor"))
        page = await self.svc.list_calls(
            live=query_bool(q, "live"),
            number=query_str(q, "number", models.E164_PATTERN),
            agent_id=query_str(q, "agent_id", models.AGENT_ID_PATTERN),
            limit=query_int(q, "limit", 50, 1, MAX_PAGE),
            cursor=query_str(q, "cursor"),
        )
        return json_response(page)

    async def get_call(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        return json_response(await self.svc.get_call(request.path_params["sid"]))

    async def get_transcript(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        view = await self.svc.get_transcript(request.path_params["sid"])
        if prefers_text(request.headers.get("accept", "")):
            text = render_text(view.call_sid, view.entries, view.latency)
            return Response(text, media_type="text/plain; charset=utf-8")
        return json_response(view)

    async def get_recording(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        return recording_response(self.svc, request.path_params["sid"])

    async def transfer_call(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        req = decode_body(await request.body(), models.TransferCall)
        return json_response(await self.svc.transfer(request.path_params["sid"], req.to))

    async def hangup_call(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        return json_response(await self.svc.hangup(request.path_params["sid"]))

    # -- instances

    async def list_instances(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        return json_response(models.InstanceList(items=await self.svc.list_instances()))

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/numbers", self.list_numbers, methods=["GET"]),
            Route("/numbers", self.import_number, methods=["POST"]),
            Route("/numbers/{id}", self.get_number, methods=["GET"]),
            Route("/numbers/{id}", self.update_number, methods=["PATCH"]),
            Route("/numbers/{id}", self.delete_number, methods=["DELETE"]),
            Route("/agents", self.list_agents, methods=["GET"]),
            Route("/agents", self.create_agent, methods=["POST"]),
            # POST /calls (outbound calls) belongs to the telephony features: add it here.
            Route("/calls", self.list_calls, methods=["GET"]),
            Route("/calls/{sid}", self.get_call, methods=["GET"]),
            Route("/calls/{sid}/transcript", self.get_transcript, methods=["GET"]),
            Route("/calls/{sid}/recording", self.get_recording, methods=["GET"]),
            Route("/calls/{sid}/hangup", self.hangup_call, methods=["POST"]),
            Route("/calls/{sid}/transfer", self.transfer_call, methods=["POST"]),
            Route("/instances", self.list_instances, methods=["GET"]),
        ]


def admin_app(
    service: Provisioning,
    token: str,
    metrics: Metrics,
    *,
    auth_failures_per_minute: int = 10,
    extra_routes: list[BaseRoute] | None = None,
) -> Starlette:
    """The admin sub-app (mounted at ``/admin`` by :func:`admin_routes`)."""
    endpoints = AdminEndpoints(service, openapi_document())
    throttle = FailureThrottle(auth_failures_per_minute)
    return Starlette(
        routes=[*endpoints.routes(), *(extra_routes or [])],
        middleware=[
            Middleware(BearerAuth, token=token, throttle=throttle, metrics=metrics),
            Middleware(BodyLimit, max_bytes=MAX_BODY_BYTES),
        ],
        exception_handlers={BridgeError: _bridge_error, HTTPException: _http_error},
    )


class _AdminMount(Mount):
    """A Mount whose prefix match also spans newlines in the rest of the path.

    Starlette's mount pattern is ``^/admin/(?P<path>.*)$``, and ``.`` stops at ``\n``,
    so ``/admin/calls/a%0A/hangup`` would fall through to the main app's plain-text 404
    instead of reaching the admin API's JSON errors.
    """

    def __init__(self, path: str, app: ASGIApp):
        super().__init__(path, app=app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)


def admin_routes(
    service: Provisioning,
    cfg: AdminConfig,
    metrics: Metrics,
    extra_routes: list[BaseRoute] | None = None,
) -> list[BaseRoute]:
    """The routes to add to the main app: ``[Mount("/admin", ...)]``, or none without a token."""
    token = cfg.token
    if not token:
        log_event(
            logger,
            "admin.disabled",
            level=logging.WARNING,
            reason="no admin token configured (BRIDGE_ADMIN_TOKEN / admin.token)",
        )
        return []
    log_event(logger, "admin.enabled", prefix=PREFIX)
    app = admin_app(
        service,
        token,
        metrics,
        auth_failures_per_minute=cfg.auth_failures_per_minute,
        extra_routes=extra_routes,
    )
    return [_AdminMount(PREFIX, app)]
