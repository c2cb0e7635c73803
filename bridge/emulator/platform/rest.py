"""The platform's REST endpoints (seeds 000 and 004) as Starlette routes over PlatformState."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.routing import Route

from bridge.emulator.platform.endpoint import (
    Endpoints,
    convert_body,
    decode_body,
    decode_object,
    query_int,
    required_query,
)
from bridge.emulator.platform.problems import MISSING
from bridge.emulator.platform.state import PlatformState
from bridge.errors import InputError
from bridge.platform.agents import (
    AgentsPage,
    CreateAgentRequest,
    CreateAgentResponse,
    SignedUrlResponse,
)
from bridge.platform.phone_numbers import (
    CreatePhoneNumberResponse,
    CreateSipTrunkPhoneNumberRequest,
    CreateTwilioPhoneNumberRequest,
    UpdatePhoneNumberRequest,
)
from bridge.platform.workspace import (
    CreateSecretRequest,
    PatchConvAISettingsRequest,
    SecretsList,
    UpdateSecretRequest,
)

CONVERSATION_PATH = "/v1/convai/conversation"


def ws_base_for(request: Request, public_ws_base: str | None) -> str:
    """Where clients reach our conversation WebSocket: the configured base, else the
    scheme and host this request came in on."""
    if public_ws_base:
        return public_ws_base.rstrip("/")
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}"


class PlatformApi:
    def __init__(self, state: PlatformState, api_key: str | None, public_ws_base: str | None):
        self.state = state
        self.public_ws_base = public_ws_base
        self.endpoints = Endpoints(state, api_key)

    def routes(self) -> list[Route]:
        w = self.endpoints.wrap
        return [
            Route("/v1/convai/phone-numbers", w(self.create_phone_number), methods=["POST"]),
            Route("/v1/convai/phone-numbers", w(self.list_phone_numbers), methods=["GET"]),
            Route("/v1/convai/phone-numbers/{phone_number_id}", w(self.get_phone_number), methods=["GET"]),
            Route("/v1/convai/phone-numbers/{phone_number_id}", w(self.update_phone_number), methods=["PATCH"]),
            Route("/v1/convai/phone-numbers/{phone_number_id}", w(self.delete_phone_number), methods=["DELETE"]),
            Route("/v1/convai/agents/create", w(self.create_agent), methods=["POST"]),
            Route("/v1/convai/agents", w(self.list_agents), methods=["GET"]),
            Route("/v1/convai/agents/{agent_id}", w(self.get_agent), methods=["GET"]),
            Route("/v1/convai/agents/{agent_id}/widget", w(self.get_widget), methods=["GET"]),
            Route("/v1/convai/agents/{agent_id}/avatar", w(self.create_avatar), methods=["POST"]),
            Route("/v1/convai/conversation/get-signed-url", w(self.get_signed_url), methods=["GET"]),
            Route("/v1/convai/settings", w(self.get_settings), methods=["GET"]),
            Route("/v1/convai/settings", w(self.update_settings), methods=["PATCH"]),
            Route("/v1/convai/secrets", w(self.list_secrets), methods=["GET"]),
            Route("/v1/convai/secrets", w(self.create_secret), methods=["POST"]),
            Route("/v1/convai/secrets/{secret_id}", w(self.update_secret), methods=["PATCH"]),
            Route("/v1/convai/test-invocations", w(self.list_test_invocations), methods=["GET"]),
        ]  # fmt: skip

    # ----------------------------------------------------------------- phone numbers

    async def create_phone_number(self, request: Request) -> CreatePhoneNumberResponse:
        data = await decode_object(request)
        provider = data.get("provider")
        if provider is None:
            # The seed's oneOf has no discriminator: a body with Twilio credentials is Twilio.
            provider = "twilio" if "sid" in data or "token" in data else "sip_trunk"
        cls: type[CreateTwilioPhoneNumberRequest] | type[CreateSipTrunkPhoneNumberRequest]
        if provider == "twilio":
            cls = CreateTwilioPhoneNumberRequest
        elif provider == "sip_trunk":
            cls = CreateSipTrunkPhoneNumberRequest
        else:
            raise InputError(
                "body.provider", f"Input should be 'twilio' or 'sip_trunk', got {provider!r}"
            )
        body = convert_body({**data, "provider": provider}, cls)
        return CreatePhoneNumberResponse(phone_number_id=self.state.create_phone_number(body))

    async def list_phone_numbers(self, request: Request) -> Any:
        return self.state.list_phone_numbers()

    async def get_phone_number(self, request: Request) -> Any:
        return self.state.get_phone_number(request.path_params["phone_number_id"])

    async def update_phone_number(self, request: Request) -> Any:
        body = await decode_body(request, UpdatePhoneNumberRequest)
        return self.state.update_phone_number(request.path_params["phone_number_id"], body)

    async def delete_phone_number(self, request: Request) -> dict[str, Any]:
        self.state.delete_phone_number(request.path_params["phone_number_id"])
        return {}

    # ----------------------------------------------------------------- agents

    async def create_agent(self, request: Request) -> CreateAgentResponse:
        body = await decode_body(request, CreateAgentRequest)
        return CreateAgentResponse(agent_id=self.state.create_agent(body))

    async def list_agents(self, request: Request) -> AgentsPage:
        q = request.query_params
        return self.state.list_agents(
            page_size=query_int(request, "page_size"),
            cursor=q.get("cursor"),
            search=q.get("search"),
        )

    async def get_agent(self, request: Request) -> Any:
        return self.state.get_agent(request.path_params["agent_id"])

    async def get_widget(self, request: Request) -> Any:
        return self.state.widget(request.path_params["agent_id"])

    async def create_avatar(self, request: Request) -> Any:
        agent_id = request.path_params["agent_id"]
        self.state.agent_record(agent_id)
        async with request.form() as form:
            upload = form.get("avatar_file")
            if not isinstance(upload, UploadFile):
                raise InputError("body.avatar_file", MISSING)
            data = await upload.read()
            content_type = upload.content_type or "application/octet-stream"
        url = f"{str(request.base_url).rstrip('/')}/emulator/avatars/{quote(agent_id, safe='')}"
        return self.state.set_avatar(agent_id, content_type, data, url)

    async def get_signed_url(self, request: Request) -> SignedUrlResponse:
        agent_id = required_query(request, "agent_id")
        token = self.state.issue_token(agent_id, time.monotonic())
        base = ws_base_for(request, self.public_ws_base)
        return SignedUrlResponse(
            signed_url=f"{base}{CONVERSATION_PATH}?agent_id={quote(agent_id, safe='')}&token={token}"
        )

    # ----------------------------------------------------------------- workspace

    async def get_settings(self, request: Request) -> Any:
        return self.state.get_settings()

    async def update_settings(self, request: Request) -> Any:
        return self.state.update_settings(await decode_body(request, PatchConvAISettingsRequest))

    async def list_secrets(self, request: Request) -> SecretsList:
        return SecretsList(secrets=self.state.list_secrets())

    async def create_secret(self, request: Request) -> Any:
        body = convert_body(await decode_object(request), CreateSecretRequest, required=("type",))
        return self.state.create_secret(body)

    async def update_secret(self, request: Request) -> Any:
        data = await decode_object(request)
        body = convert_body(data, UpdateSecretRequest, required=("type",))
        return self.state.update_secret(request.path_params["secret_id"], body)

    # ----------------------------------------------------------------- test invocations

    async def list_test_invocations(self, request: Request) -> Any:
        return self.state.list_test_invocations(
            required_query(request, "agent_id"),
            page_size=query_int(request, "page_size"),
            cursor=request.query_params.get("cursor"),
        )
