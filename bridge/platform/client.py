"""Async client for the Agents Platform REST endpoints of the seeds.

One method per endpoint, typed requests and responses (the structs in this package,
shared with the emulator).  Behaviour on failure:

* every error becomes one :class:`~bridge.errors.PlatformApiError` carrying the HTTP
  status, the platform's own message, its error code (``detail.status``) and the request
  id; for a 422 the ``detail`` list is kept verbatim on ``.detail`` and printed in the
  message as ``loc: msg`` lines, so a user sees exactly what the platform rejected;
* idempotent calls (GET, DELETE) are retried on 429/500/502/503/504 and on transport
  errors, with exponential backoff and jitter, honouring ``Retry-After`` (capped); POST
  and PATCH are never retried, since a lost response may hide a side effect;
* one timeout for the whole request plus a shorter connect timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx
import msgspec

from bridge.errors import PlatformApiError
from bridge.log import log_event
from bridge.platform.agents import (
    Agent,
    AgentsPage,
    AgentSummary,
    CreateAgentRequest,
    CreateAgentResponse,
    SignedUrlResponse,
)
from bridge.platform.invocations import TestInvocationsPage, TestInvocationSummary
from bridge.platform.phone_numbers import (
    CreatePhoneNumberRequest,
    CreatePhoneNumberResponse,
    PhoneNumber,
    UpdatePhoneNumberRequest,
)
from bridge.platform.widget import AgentAvatarResponse, AgentEmbed
from bridge.platform.workspace import (
    ConvAISettings,
    CreateSecretRequest,
    PatchConvAISettingsRequest,
    SecretResponse,
    SecretsList,
    StoredSecret,
    UpdateSecretRequest,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# msgspec decodes a tagged union given the union itself; typed as one class for _call.
_PHONE_NUMBER = cast("type[PhoneNumber]", PhoneNumber)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "DELETE"})
REQUEST_ID_HEADERS = ("request-id", "x-request-id")


class _ErrorEnvelope(msgspec.Struct):
    detail: Any = None


def _seg(value: str) -> str:
    """One URL path segment, percent-encoded (ids come from users and upstream)."""
    return quote(value, safe="")


def _describe_detail(detail: Any) -> tuple[str, str | None]:
    """(human message, error code) from an error body's ``detail``."""
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []))
                lines.append(f"{loc}: {item.get('msg', '')}")
            else:
                lines.append(str(item))
        return "validation failed: " + "; ".join(lines), None
    if isinstance(detail, dict):
        message = detail.get("message")
        status = detail.get("status")
        return (
            str(message) if message is not None else msgspec.json.encode(detail).decode(),
            str(status) if status is not None else None,
        )
    if isinstance(detail, str):
        return detail, None
    return "request failed", None


def _request_id(response: httpx.Response) -> str | None:
    return next((response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class PlatformClient:
    """Async Agents Platform REST client.  Use as ``async with PlatformClient(...) as c``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 3,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        headers = {"accept": "application/json"}
        if api_key is not None:
            headers["xi-api-key"] = api_key
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            transport=transport,
        )
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    async def __aenter__(self) -> PlatformClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ----------------------------------------------------------------- transport

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        hinted = _retry_after(response) if response is not None else None
        if hinted is not None:
            return min(hinted, self.max_backoff_s)
        base: float = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        return base * random.uniform(0.5, 1.0)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: msgspec.Struct | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> httpx.Response:
        retry = method in IDEMPOTENT_METHODS
        content = msgspec.json.encode(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, path, params=query, content=content, headers=headers, files=files
                )
            except httpx.TransportError as e:
                if retry and attempt < self.max_retries:
                    delay = self._delay(attempt, None)
                    log_event(
                        log, "platform.retry", method=method, path=path, error=type(e).__name__,
                        attempt=attempt + 1, delay_s=round(delay, 3),
                    )  # fmt: skip
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                kind = "timed out" if isinstance(e, httpx.TimeoutException) else "failed"
                raise PlatformApiError(f"{method} {path} {kind}: {type(e).__name__}: {e}") from e
            if response.status_code in RETRY_STATUSES and retry and attempt < self.max_retries:
                delay = self._delay(attempt, response)
                log_event(
                    log, "platform.retry", method=method, path=path,
                    status=response.status_code, attempt=attempt + 1, delay_s=round(delay, 3),
                )  # fmt: skip
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if response.is_success:
                return response
            raise self._error(method, path, response)

    @staticmethod
    def _error(method: str, path: str, response: httpx.Response) -> PlatformApiError:
        request_id = _request_id(response)
        detail: Any = None
        try:
            detail = msgspec.json.decode(response.content, type=_ErrorEnvelope).detail
            message, code = _describe_detail(detail)
        except (msgspec.DecodeError, msgspec.ValidationError):
            text = response.text.strip()[:500]
            message, code = (text or response.reason_phrase or "request failed"), None
        return PlatformApiError(
            f"{method} {path}: {message}",
            status=response.status_code,
            request_id=request_id,
            code=code,
            detail=detail,
        )

    async def _call(
        self,
        method: str,
        path: str,
        expect: type[T],
        *,
        params: dict[str, Any] | None = None,
        body: msgspec.Struct | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> T:
        response = await self._send(method, path, params=params, body=body, files=files)
        try:
            return msgspec.json.decode(response.content, type=expect)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise PlatformApiError(
                f"{method} {path}: unexpected response body: {e}",
                status=response.status_code,
                request_id=_request_id(response),
            ) from None

    # ----------------------------------------------------------------- phone numbers

    async def create_phone_number(self, request: CreatePhoneNumberRequest) -> str:
        """Import a Twilio or SIP-trunk number; returns its ``phone_number_id``."""
        out = await self._call(
            "POST", "/v1/convai/phone-numbers", CreatePhoneNumberResponse, body=request
        )
        return out.phone_number_id

    async def list_phone_numbers(self) -> list[PhoneNumber]:
        return await self._call("GET", "/v1/convai/phone-numbers", list[PhoneNumber])

    async def get_phone_number(self, phone_number_id: str) -> PhoneNumber:
        return await self._call(
            "GET", f"/v1/convai/phone-numbers/{_seg(phone_number_id)}", _PHONE_NUMBER
        )

    async def update_phone_number(
        self, phone_number_id: str, request: UpdatePhoneNumberRequest
    ) -> PhoneNumber:
        return await self._call(
            "PATCH",
            f"/v1/convai/phone-numbers/{_seg(phone_number_id)}",
            _PHONE_NUMBER,
            body=request,
        )

    async def assign_agent(self, phone_number_id: str, agent_id: str | None) -> PhoneNumber:
        """Assign ``agent_id`` to the number, or unassign with ``None``."""
        return await self.update_phone_number(
            phone_number_id, UpdatePhoneNumberRequest(agent_id=agent_id)
        )

    async def delete_phone_number(self, phone_number_id: str) -> None:
        await self._send("DELETE", f"/v1/convai/phone-numbers/{_seg(phone_number_id)}")

    # ----------------------------------------------------------------- agents

    async def create_agent(self, request: CreateAgentRequest) -> str:
        """Create an agent; returns its ``agent_id``."""
        out = await self._call(
            "POST", "/v1/convai/agents/create", CreateAgentResponse, body=request
        )
        return out.agent_id

    async def get_agent(self, agent_id: str) -> Agent:
        return await self._call("GET", f"/v1/convai/agents/{_seg(agent_id)}", Agent)

    async def list_agents(
        self, *, page_size: int | None = None, cursor: str | None = None, search: str | None = None
    ) -> AgentsPage:
        return await self._call(
            "GET",
            "/v1/convai/agents",
            AgentsPage,
            params={"page_size": page_size, "cursor": cursor, "search": search},
        )

    async def iter_agents(self, *, page_size: int | None = None) -> AsyncIterator[AgentSummary]:
        """Every agent, following ``next_cursor`` page by page."""
        cursor: str | None = None
        while True:
            page = await self.list_agents(page_size=page_size, cursor=cursor)
            for agent in page.agents:
                yield agent
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor

    async def get_signed_url(self, agent_id: str) -> str:
        """A conversation WebSocket URL for ``agent_id`` carrying a short-lived token."""
        out = await self._call(
            "GET",
            "/v1/convai/conversation/get-signed-url",
            SignedUrlResponse,
            params={"agent_id": agent_id},
        )
        return out.signed_url

    # ----------------------------------------------------------------- workspace

    async def get_settings(self) -> ConvAISettings:
        return await self._call("GET", "/v1/convai/settings", ConvAISettings)

    async def update_settings(self, request: PatchConvAISettingsRequest) -> ConvAISettings:
        return await self._call("PATCH", "/v1/convai/settings", ConvAISettings, body=request)

    async def list_secrets(self) -> list[StoredSecret]:
        return (await self._call("GET", "/v1/convai/secrets", SecretsList)).secrets

    async def create_secret(self, name: str, value: str) -> SecretResponse:
        return await self._call(
            "POST",
            "/v1/convai/secrets",
            SecretResponse,
            body=CreateSecretRequest(name=name, value=value),
        )

    async def update_secret(self, secret_id: str, name: str, value: str) -> SecretResponse:
        return await self._call(
            "PATCH",
            f"/v1/convai/secrets/{_seg(secret_id)}",
            SecretResponse,
            body=UpdateSecretRequest(name=name, value=value),
        )

    # ----------------------------------------------------------------- widget

    async def get_widget(
        self, agent_id: str, *, conversation_signature: str | None = None
    ) -> AgentEmbed:
        return await self._call(
            "GET",
            f"/v1/convai/agents/{_seg(agent_id)}/widget",
            AgentEmbed,
            params={"conversation_signature": conversation_signature},
        )

    async def create_avatar(
        self,
        agent_id: str,
        image: bytes,
        *,
        filename: str = "avatar.png",
        content_type: str = "image/png",
    ) -> AgentAvatarResponse:
        return await self._call(
            "POST",
            f"/v1/convai/agents/{_seg(agent_id)}/avatar",
            AgentAvatarResponse,
            files={"avatar_file": (filename, image, content_type)},
        )

    # ----------------------------------------------------------------- test invocations

    async def list_test_invocations(
        self, agent_id: str, *, page_size: int | None = None, cursor: str | None = None
    ) -> TestInvocationsPage:
        return await self._call(
            "GET",
            "/v1/convai/test-invocations",
            TestInvocationsPage,
            params={"agent_id": agent_id, "page_size": page_size, "cursor": cursor},
        )

    async def iter_test_invocations(
        self, agent_id: str, *, page_size: int | None = None
    ) -> AsyncIterator[TestInvocationSummary]:
        """Every test invocation of ``agent_id``, following ``next_cursor``."""
        cursor: str | None = None
        while True:
            page = await self.list_test_invocations(agent_id, page_size=page_size, cursor=cursor)
            for item in page.results:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor
