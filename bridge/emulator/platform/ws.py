"""The conversation WebSocket ``/v1/convai/conversation``: a thin adapter around
:class:`EmulatedConversation`.

Authorization comes first: an unknown or missing agent, or a private agent without a
valid signed-URL token or API key, is accepted and closed at once with 1008 and the
reason, as the platform does.  Then a :class:`_Link` is the socket's sink: each text
frame is fed to the conversation in the callback and what it answers is written at
once, in one ``write``; the conversation's clock is one ``loop.call_later`` timer,
re-armed only when its deadline moves.  No task, queue or await per frame.  While the
client reads too slowly (``can_send`` False) outputs wait in order, up to
:data:`MAX_PENDING_OUTPUTS`, and go out on ``on_writable``.

The socket is the direct one of our uvicorn protocol (:mod:`bridge.ws.server`), or under
any other server the same API over plain ASGI (:class:`~bridge.ws.asgi_socket.AsgiSocket`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import secrets
import time

from starlette.websockets import WebSocket

from bridge.emulator.platform.conversation import (
    CLOSE_POLICY,
    CloseConnection,
    ConversationTiming,
    EmulatedConversation,
    Output,
    SendText,
    truncate_reason,
)
from bridge.emulator.platform.state import PlatformState
from bridge.log import log_event
from bridge.ws.asgi_socket import AsgiSocket
from bridge.ws.server import direct_socket
from bridge.ws.socket import ABNORMAL, NO_STATUS, MessageSocket

log = logging.getLogger("bridge.emulator.platform")

CLOSE_WAIT_S = 2.0  # the client's answer to our close
# Outputs held while the client does not read (~40 s of 20 ms loopback audio); past
# that the client is taken as stuck and the socket closed rather than grown further.
MAX_PENDING_OUTPUTS = 2000


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
        try:
            await _Link(direct_socket(ws.scope) or AsgiSocket(ws), conv).run()
        finally:
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


class _Link:
    """One conversation on a socket: its sink, its timer, its output.

    Every input (a frame, the timer, the socket becoming writable) is one *step*: feed
    the conversation, write what it produced, re-arm the timer.  :attr:`done` resolves
    when the conversation is over on our side (closed and its last output written, or
    the client gone); the handler's coroutine awaits it.
    """

    def __init__(self, sock: MessageSocket, conv: EmulatedConversation):
        self.sock = sock
        self.conv = conv
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self._pending: list[Output] = []  # outputs waiting for the socket to drain
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # what _timer is armed for

    async def run(self) -> None:
        try:
            self.conv.tick(time.monotonic())
            self._flush()
        except Exception as e:
            self._fail(e)
        if not self.done.done():
            self.sock.attach(self)  # frames that came before are delivered now
        try:
            await self.done
        finally:
            self._stop()
        # A close we sent is on its way (the ASGI socket's writer may still hold it):
        # let the closing handshake finish before the handler returns, bounded.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self.sock.wait_closed()

    # ------------------------------------------------------------------ sink

    def on_text(self, text: str) -> None:
        if self.done.done():
            return
        try:
            now = time.monotonic()
            conv = self.conv
            conv.receive(text, now)
            conv.tick(now)
            self._flush()
        except Exception as e:
            self._fail(e)

    def on_binary(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            now = time.monotonic()
            self.conv.receive_binary(now)
            self.conv.tick(now)
            self._flush()
        except Exception as e:
            self._fail(e)

    def on_writable(self) -> None:
        if self._pending and not self.done.done():
            try:
                self._flush()
            except Exception as e:
                self._fail(e)

    def on_closed(self, code: int, reason: str) -> None:
        if self.done.done():
            return
        # The ASGI path reports a connection lost without a close frame as 1005 (what
        # uvicorn says); keep the records the same on both paths.
        self.conv.client_closed(NO_STATUS if code == ABNORMAL else code, reason, time.time())
        self._finish()

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        if self.done.done():
            return
        try:
            self.conv.tick(time.monotonic())
            self._flush()
        except Exception as e:
            self._fail(e)

    def _fail(self, error: Exception) -> None:
        """A bug in a step: the handler ends with the error, as on the ASGI path."""
        self._stop()
        if not self.done.done():
            self.done.set_exception(error)

    # ------------------------------------------------------------------ output

    def _flush(self) -> None:
        """Write the conversation's outputs (after any still pending), then re-arm."""
        conv = self.conv
        outputs = conv.take_outputs()
        pending = self._pending
        if pending:
            pending.extend(outputs)
            outputs = pending
        if outputs:
            if self.sock.can_send:
                self._pending = []
                if not self._write(outputs):
                    return
            else:
                self._pending = outputs
                if len(outputs) > MAX_PENDING_OUTPUTS:
                    self._give_up(len(outputs))
                    return
        if conv.closed:
            if not self._pending:
                self._finish()
            return
        self._arm()

    def _write(self, outputs: list[Output]) -> bool:
        """Send ``outputs`` in one write; False once the conversation is over."""
        texts: list[str] = []
        for out in outputs:
            if isinstance(out, SendText):
                texts.append(out.text)
                continue
            assert isinstance(out, CloseConnection)
            if texts:
                self.sock.send_texts(texts)
            self.sock.close(out.code, out.reason)
            self._finish()
            return False
        if not self.sock.send_texts(texts):
            self.conv.client_closed(None, "connection lost while sending", time.time())
            self._finish()
            return False
        return True

    def _give_up(self, held: int) -> None:
        """The client has not read for too long: close instead of growing its backlog."""
        self._pending = []
        reason = f"client is not reading: {held} messages held"
        conv = self.conv
        conv.record.notes.append(reason)
        conv.close(CLOSE_POLICY, reason)  # a no-op if it had closed: its close was held too
        conv.take_outputs()
        self.sock.close(CLOSE_POLICY, reason)
        self._finish()

    # ------------------------------------------------------------------ clock

    def _arm(self) -> None:
        """Have the timer fire by the conversation's next deadline.

        A timer already due no later stays: a tick before a deadline does nothing, and
        the timer is re-armed when it fires.  So a deadline that moves later with every
        frame (the silence gap while the caller speaks, the reply pacing) costs one
        timer per firing, not one per frame.
        """
        deadline = self.conv.next_deadline()
        if deadline is None or math.isinf(deadline):
            return  # a timer still armed fires once more, harmlessly
        if self._timer is not None:
            assert self._deadline is not None
            if self._deadline <= deadline:
                return
            self._timer.cancel()
        self._deadline = deadline
        self._timer = self.loop.call_later(max(0.0, deadline - time.monotonic()), self._on_timer)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._deadline = None

    def _finish(self) -> None:
        self._stop()
        if not self.done.done():
            self.done.set_result(None)
