"""What every emulator HTTP endpoint does around its handler.

In order: give the request an id (``request-id`` response header, like the platform);
serve an injected fault if one matches; check ``xi-api-key`` (401 with the platform's
error body when missing or wrong); run the handler; encode its struct as JSON, or turn an
:class:`~bridge.errors.InputError` into the platform's error body.  Handlers stay
plain: request in, struct out.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from bridge.emulator.platform.problems import MISSING, body_for, input_error_from_msgspec
from bridge.emulator.platform.state import PlatformState
from bridge.errors import InputError
from bridge.log import log_event
from bridge.platform.common import ErrorBody, ErrorDetail

log = logging.getLogger("bridge.emulator.platform")

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Any]]

_encoder = msgspec.json.Encoder()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(body), status, headers, media_type="application/json")


def api_key_problem(given: str | None, expected: str | None) -> str | None:
    """Why a request's ``xi-api-key`` is refused, or None.  ``expected=None`` accepts any
    key, but the header is still required, as on the platform."""
    if not given:
        return "missing the xi-api-key header"
    if expected is not None and not hmac.compare_digest(given.encode(), expected.encode()):
        return "invalid API key"
    return None


class Endpoints:
    def __init__(self, state: PlatformState, api_key: str | None):
        self.state = state
        self.api_key = api_key

    def wrap(
        self, handler: Handler, *, auth: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            rid = f"req_{secrets.token_hex(8)}"
            headers = {"request-id": rid}
            fault = self.state.take_fault(request.method, request.url.path)
            if fault is not None:
                if fault.retry_after_s is not None:
                    headers["retry-after"] = f"{fault.retry_after_s:g}"
                log_event(log, "emulator.fault", path=request.url.path, status=fault.status)
                body = ErrorBody(detail=ErrorDetail(status="injected_fault", message=fault.message))
                return json_response(body, fault.status, headers)
            if auth:
                problem = api_key_problem(request.headers.get("xi-api-key"), self.api_key)
                if problem is not None:
                    body = ErrorBody(detail=ErrorDetail(status="invalid_api_key", message=problem))
                    return json_response(body, 401, headers)
            try:
                result = await handler(request)
            except InputError as e:
                log_event(
                    log, "emulator.rejected", path=request.url.path, status=e.status, field=e.field
                )
                return json_response(body_for(e), e.status, headers)
            if isinstance(result, Response):
                result.headers.update(headers)
                return result
            return json_response(result, 200, headers)

        return endpoint


async def decode_body(request: Request, cls: type[T]) -> T:
    """The JSON body as ``cls``; a missing, malformed or mistyped body is a 422."""
    raw = await request.body()
    if not raw.strip():
        raise InputError("body", MISSING)
    try:
        return msgspec.json.decode(raw, type=cls)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise input_error_from_msgspec(e, ["body"]) from None


async def decode_object(request: Request) -> dict[str, Any]:
    """The JSON body as an object (for bodies whose type depends on a field in them)."""
    return await decode_body(request, dict[str, Any])


def convert_body(data: dict[str, Any], cls: type[T], *, required: tuple[str, ...] = ()) -> T:
    """A decoded JSON object as ``cls``.  ``required`` names fields the schema requires that
    msgspec would default (a tagged struct's tag, e.g. a secret request's ``type``)."""
    for name in required:
        if name not in data:
            raise InputError(f"body.{name}", MISSING)
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as e:
        raise input_error_from_msgspec(e, ["body"]) from None


def query_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"query.{name}", f"Input should be a valid integer, got {raw!r}") from None


def required_query(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise InputError(f"query.{name}", MISSING)
    return value
