"""Emulator-only endpoints under ``/emulator/``: what conversations received, fault
injection, seeding test invocations, avatar images.

All but the avatar image require ``xi-api-key`` like the platform API, so a test process
out of the emulator's own (e.g. ``bridge emulator`` on a port) can assert on what a
bridge sent::

    GET    /emulator/conversations[?agent_id=...]   -> [ConversationRecord, ...]
    GET    /emulator/conversations/{id}             -> ConversationRecord
    GET    /emulator/conversations/{id}/audio       -> captured caller audio (raw bytes)
    POST   /emulator/faults      {"path_prefix", "status", "times", "method", "retry_after_s"}
    DELETE /emulator/faults
    POST   /emulator/test-invocations {"agent_id", "title", "passed", "failed", "pending"}
    GET    /emulator/avatars/{agent_id}             -> the uploaded image
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.emulator.platform.endpoint import Endpoints, decode_body
from bridge.emulator.platform.records import ConversationRecord
from bridge.emulator.platform.state import Fault, PlatformState
from bridge.errors import InputError


class FaultRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path_prefix: str
    status: Annotated[int, msgspec.Meta(ge=400, le=599)]
    times: Annotated[int, msgspec.Meta(ge=1)] = 1
    method: str | None = None
    retry_after_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    message: str = "injected fault"


class TestInvocationRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    agent_id: str
    title: str
    passed: Annotated[int, msgspec.Meta(ge=0)] = 0
    failed: Annotated[int, msgspec.Meta(ge=0)] = 0
    pending: Annotated[int, msgspec.Meta(ge=0)] = 0
    cancelled: Annotated[int, msgspec.Meta(ge=0)] = 0


class InspectionApi:
    def __init__(self, state: PlatformState, api_key: str | None):
        self.state = state
        self.endpoints = Endpoints(state, api_key)

    def routes(self) -> list[Route]:
        w = self.endpoints.wrap
        return [
            Route("/emulator/conversations", w(self.list_conversations), methods=["GET"]),
            Route("/emulator/conversations/{conversation_id}", w(self.get_conversation), methods=["GET"]),
            Route("/emulator/conversations/{conversation_id}/audio", w(self.get_audio), methods=["GET"]),
            Route("/emulator/faults", w(self.add_fault), methods=["POST"]),
            Route("/emulator/faults", w(self.clear_faults), methods=["DELETE"]),
            Route("/emulator/test-invocations", w(self.add_test_invocation), methods=["POST"]),
            Route("/emulator/avatars/{agent_id}", w(self.get_avatar, auth=False), methods=["GET"]),
        ]  # fmt: skip

    async def list_conversations(self, request: Request) -> list[ConversationRecord]:
        agent_id = request.query_params.get("agent_id")
        return [
            e.record
            for e in self.state.conversations.values()
            if agent_id is None or e.record.agent_id == agent_id
        ]

    async def get_conversation(self, request: Request) -> ConversationRecord:
        return self.state.conversation(request.path_params["conversation_id"]).record

    async def get_audio(self, request: Request) -> Response:
        entry = self.state.conversation(request.path_params["conversation_id"])
        if entry.capture is None:
            raise InputError(
                "path.conversation_id",
                "audio was not captured: set conversation_config.agent.emulator.capture_audio",
                status=404,
            )
        return Response(
            bytes(entry.capture),
            media_type="application/octet-stream",
            headers={"x-audio-format": entry.record.input_format},
        )

    async def add_fault(self, request: Request) -> dict[str, Any]:
        f = await decode_body(request, FaultRequest)
        self.state.inject_fault(
            Fault(
                path_prefix=f.path_prefix,
                status=f.status,
                times=f.times,
                method=f.method.upper() if f.method else None,
                retry_after_s=f.retry_after_s,
                message=f.message,
            )
        )
        return {"faults": len(self.state.faults)}

    async def clear_faults(self, request: Request) -> dict[str, Any]:
        self.state.faults.clear()
        return {"faults": 0}

    async def add_test_invocation(self, request: Request) -> dict[str, Any]:
        r = await decode_body(request, TestInvocationRequest)
        inv_id = self.state.add_test_invocation(
            r.agent_id,
            r.title,
            passed=r.passed,
            failed=r.failed,
            pending=r.pending,
            cancelled=r.cancelled,
        )
        return {"id": inv_id}

    async def get_avatar(self, request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        avatar = self.state.avatars.get(agent_id)
        if avatar is None:
            raise InputError("path.agent_id", f"agent {agent_id!r} has no avatar", status=404)
        return Response(avatar.data, media_type=avatar.content_type)
