"""HTTP helpers every part of the bridge that serves HTTP shares; below all of them
(it imports only config, log, metrics, the edge's turns and the signature check).

* The public paths Twilio is given (``MEDIA_PATH``, ``INBOUND_PATH``…): what its
  signatures are computed over, and where :mod:`bridge.call.endpoints` serves them.
* :func:`signed_form`: a Twilio webhook's form, bounded and its signature checked.
* :func:`json_response` / :func:`error_response`: the JSON answers of the admin and
  telephony APIs, errors in one shape (:class:`ErrorBody`).
"""

from __future__ import annotations

import logging
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bridge.config import Config
from bridge.edge.turns import turns
from bridge.log import log_event
from bridge.metrics import Metrics
from bridge.twilio.signature import is_valid

logger = logging.getLogger("bridge.twilio")  # (the webhooks' log)

MEDIA_PATH: Final = "/twilio/media"
INBOUND_PATH: Final = "/twilio/inbound"
STATUS_PATH: Final = "/twilio/status"
STREAM_STATUS_PATH: Final = "/twilio/stream-status"
AFTER_STREAM_PATH: Final = "/twilio/after-stream"

_FORM: Final = "application/x-www-form-urlencoded"
# Webhook bodies above this wait for their turn (bridge.edge.turns) before parsing.
_HEAVY_BODY: Final = 8 * 1024

_encoder = msgspec.json.Encoder()


# --------------------------------------------------------------------------- JSON answers


class UpstreamInfo(msgspec.Struct, kw_only=True):
    """A failed upstream request, as far as it may be shown (never credentials)."""

    service: Literal["platform", "twilio"]
    status: int | None
    message: str
    request_id: str | None = None
    code: int | str | None = None


class Rollback(msgspec.Struct, kw_only=True):
    """A multi-step operation that failed part way: which steps were undone, which stay."""

    undone: list[str]
    left_done: list[str]


class ErrorInfo(msgspec.Struct, kw_only=True):
    # The request field at fault (``body`` for an unreadable body), None if none is.
    field: str | None
    message: str
    upstream: UpstreamInfo | None = None
    rollback: Rollback | None = None


class ErrorBody(msgspec.Struct, kw_only=True):
    error: ErrorInfo


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(body), status, headers, media_type="application/json")


def error_response(
    status: int,
    field: str | None,
    message: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    info = ErrorInfo(field=field, message=message, **extra)
    return json_response(ErrorBody(error=info), status, headers)


# --------------------------------------------------------------------------- Twilio webhooks


async def signed_form(
    request: Request, config: Config, metrics: Metrics
) -> dict[str, str] | Response:
    """The form parameters of a Twilio webhook, or the error response to send instead.

    Bounded before any work, with or without the edge in front (bridge.edge refuses
    most of this earlier): at most ``server.max_body_bytes`` read, the fields counted
    before parsing, the signature computed once.
    """
    path = request.url.path
    if request.headers.get("content-type", "").split(";")[0].strip() != _FORM:
        log_event(logger, "twilio.bad_request", logging.WARNING, path=path, problem="not a form")
        return PlainTextResponse("expected application/x-www-form-urlencoded", 415)
    server = config.server
    raw = await _bounded_body(request, server.max_body_bytes)
    if raw is None:
        log_event(
            logger,
            "twilio.bad_request",
            logging.WARNING,
            path=path,
            problem="body too large",
            limit=server.max_body_bytes,
        )
        return PlainTextResponse("request body too large", 413)
    if raw.count(b"&") >= server.max_form_fields:  # parse_qsl splits on "&" only
        log_event(
            logger,
            "twilio.bad_request",
            logging.WARNING,
            path=path,
            problem="too many form fields",
            limit=server.max_form_fields,
        )
        return PlainTextResponse(f"more than {server.max_form_fields} form fields", 413)
    if len(raw) > _HEAVY_BODY:  # Twilio's own are smaller: they never wait in this queue
        await turns().turn()
    params = dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
    tw = config.twilio
    if tw.signatures_enforced:
        assert tw.auth_token is not None  # config refuses enforcement without a token
        url = config.public_url + path + (f"?{request.url.query}" if request.url.query else "")
        if not is_valid(tw.auth_token, url, params, request.headers.get("x-twilio-signature")):
            metrics.signature_failures_total.labels(path).inc()
            log_event(
                logger,
                "twilio.signature_invalid",
                logging.WARNING,
                path=path,
                call_sid=params.get("CallSid"),
                signed_url=url,
                has_signature="x-twilio-signature" in request.headers,
            )
            return PlainTextResponse("invalid X-Twilio-Signature", 403)
    return params


async def _bounded_body(request: Request, cap: int) -> bytes | None:
    """The request body, or None once it is known to exceed ``cap`` (not read further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and (len(declared) > 18 or int(declared) > cap):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
