"""The conversation WebSocket ``/v1/convai/conversation``: a thin loop around
:class:`EmulatedConversation`.

Per connection there are exactly two tasks, both ending with the connection: this
handler (the state machine's clock and output) and one reader feeding a bounded queue
(so a fast sender is slowed by TCP, not buffered without limit).  Authorization comes
first: an unknown or missing agent, or a private agent without a valid signed-URL token
or API key, is accepted and closed at once with 1008 and the reason, as the platform
does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import MutableMapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.emulator.platform.conversation import (
    CLOSE_POLICY,
    CloseConnection,
    ConversationTiming,
    EmulatedConversation,
    SendText,
    truncate_reason,
)
from bridge.emulator.platform.state import PlatformState
from bridge.log import log_event

log = logging.getLogger("bridge.emulator.platform")

READ_QUEUE_FRAMES = 64


class ConversationEndpoint:
    def __init__(self, state: PlatformState, api_key: str | None, timing: ConversationTiming):
        self.state = state
        self.api_key = api_key
        self.timing = timing

    def _refusal(self, ws: WebSocket, now: float) -> str | None:
        """Why this connection may not start a conversation, or None."""
        agent_id = ws.query_params.get("agent_id")
        if not agent_id:
            return "missing agent_id query parameter"
        agent = self.state.agents.get(agent_id)
        if agent is None:
            return f"agent {agent_id!r} not found"
        if not self.state.profile(agent_id).private:
            return None
        token = ws.query_params.get("token") or ws.query_params.get("conversation_signature")
        if token and self.state.token_valid(agent_id, token, now):
            return None
        key = ws.headers.get("xi-api-key")
        if key and (
            self.api_key is None or hmac.compare_digest(key.encode(), self.api_key.encode())
        ):
            return None
        if token:
            return "signed URL token is invalid or expired"
        return f"agent {agent_id!r} is private: connect with a signed URL"

    async def handle(self, ws: WebSocket) -> None:
        await ws.accept()
        refusal = self._refusal(ws, time.monotonic())
        if refusal is not None:
            log_event(log, "emulator.conversation_refused", reason=refusal)
            await ws.close(CLOSE_POLICY, truncate_reason(refusal))
            return
        agent_id = ws.query_params["agent_id"]
        profile = self.state.profile(agent_id)
        conv = EmulatedConversation(
            f"conv_{secrets.token_hex(13)}",
            profile,
            now=time.monotonic(),
            started_at_unix=time.time(),
            timing=self.timing,
            capture=bytearray() if profile.behaviour.capture_audio else None,
        )
        entry = self.state.open_conversation(conv.record, capture=conv.capture)
        log_event(
            log,
            "emulator.conversation_started",
            conversation_id=conv.conversation_id,
            agent_id=agent_id,
        )
        queue: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue(READ_QUEUE_FRAMES)
        reader = asyncio.create_task(_read(ws, queue))
        try:
            await self._run(ws, conv, queue)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if conv.record.ended_at_unix is None:
                conv.record.ended_at_unix = time.time()
            entry.active = False
            log_event(
                log,
                "emulator.conversation_ended",
                conversation_id=conv.conversation_id,
                closed_by=conv.record.closed_by,
                code=conv.record.close_code,
            )

    async def _run(
        self,
        ws: WebSocket,
        conv: EmulatedConversation,
        queue: asyncio.Queue[MutableMapping[str, Any]],
    ) -> None:
        conv.tick(time.monotonic())
        while True:
            for out in conv.take_outputs():
                if isinstance(out, SendText):
                    try:
                        await ws.send_text(out.text)
                    except (WebSocketDisconnect, RuntimeError, OSError):
                        conv.client_closed(None, "connection lost while sending", time.time())
                        return
                elif isinstance(out, CloseConnection):
                    with contextlib.suppress(RuntimeError, OSError):
                        await ws.close(out.code, out.reason)
                    return
            if conv.closed:
                return
            deadline = conv.next_deadline()
            timeout = (
                None
                if deadline is None or math.isinf(deadline)
                else max(0.0, deadline - time.monotonic())
            )
            try:
                message = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                conv.tick(time.monotonic())
                continue
            now = time.monotonic()
            kind = message["type"]
            if kind == "websocket.disconnect":
                conv.client_closed(message.get("code"), message.get("reason") or "", time.time())
                return
            if message.get("text") is not None:
                conv.receive(message["text"], now)
            elif message.get("bytes") is not None:
                conv.receive_binary(now)
            conv.tick(now)


async def _read(ws: WebSocket, queue: asyncio.Queue[MutableMapping[str, Any]]) -> None:
    while True:
        message = await ws.receive()
        await queue.put(message)
        if message["type"] == "websocket.disconnect":
            return
