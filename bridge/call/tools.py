"""Client tools: bridge-side functions the agent can call during a call.

The agent sends ``client_tool_call`` (name, id, parameters); the session looks the name
up here, the driver runs the handler with the call's :class:`CallControl`, and the
outcome goes back as ``client_tool_result``: the handler's return value as ``result``,
or ``is_error: true`` with the exception's message when it raises.  Unknown names are
answered with an error at once.

Registering a tool::

    registry = default_tools()

    @registry.tool("send_dtmf")
    async def send_dtmf(call: CallControl, params: dict[str, Any]) -> str:
        ...

This module ships ``end_call``; transfer and keypad tones are registered by the
telephony features the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import msgspec

from bridge.call.actions import HANGUP, Disposition, EndReason
from bridge.log import log_event

logger = logging.getLogger("bridge.call.tools")


# The telephony client tools (bridge.telephony.tools runs them; the admin API's agent
# template declares them to the platform): named here, below both.
TRANSFER_TOOL = "transfer_call"
DTMF_TOOL = "send_dtmf"


class CallControl(Protocol):
    """What a tool (or the admin API) may do to a live call."""

    @property
    def call_sid(self) -> str: ...

    @property
    def stream_sid(self) -> str: ...

    @property
    def agent_id(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, str]:
        """The stream's ``<Parameter>``s (``caller_id``, ``called_number``, …)."""
        ...

    def end_call(
        self,
        reason: EndReason = EndReason.AGENT_END_CALL,
        disposition: Disposition = HANGUP,
        *,
        wait_for_playout: bool = True,
    ) -> None:
        """End the call; with ``wait_for_playout`` the agent's last words are heard first."""
        ...

    def send_to_agent(self, message: msgspec.Struct) -> None:
        """Send a conversation message (``contextual_update``, ``user_message``, …)."""
        ...

    def play_to_caller(self, ulaw: bytes, label: str) -> None:
        """Queue 8 kHz mu-law audio to the caller (e.g. keypad tones), marked ``label``."""
        ...


ToolHandler = Callable[[CallControl, dict[str, Any]], Awaitable[object]]

_json = msgspec.json.Encoder()


class ToolRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, ToolHandler] = {}

    def register(self, name: str, handler: ToolHandler, *, replace: bool = False) -> None:
        if not name or not name.isprintable():
            raise ValueError(f"tool name must be printable and non-empty, got {name!r}")
        if name in self._handlers and not replace:
            raise ValueError(f"client tool {name!r} is already registered")
        self._handlers[name] = handler

    def tool(self, name: str, *, replace: bool = False) -> Callable[[ToolHandler], ToolHandler]:
        def deco(fn: ToolHandler) -> ToolHandler:
            self.register(name, fn, replace=replace)
            return fn

        return deco

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._handlers)

    async def run(self, name: str, call: CallControl, params: dict[str, Any]) -> tuple[str, bool]:
        """Run tool ``name``; returns ``(result, is_error)``, never raises for the tool."""
        handler = self._handlers.get(name)
        if handler is None:
            return f"unknown client tool {name!r}", True
        try:
            value = await handler(call, params)
        except Exception as e:  # a tool's failure is the agent's answer, not the call's end
            log_event(
                logger,
                "call.tool_failed",
                level=logging.WARNING,
                call_sid=call.call_sid,
                tool=name,
                error=f"{type(e).__name__}: {e}",
            )
            return str(e) or type(e).__name__, True
        return result_text(value), False


def result_text(value: object) -> str:
    """A handler's return value as the ``result`` string: text as is, else JSON."""
    if value is None:
        return "ok"
    if isinstance(value, str):
        return value
    try:
        return _json.encode(value).decode()
    except TypeError:
        return str(value)


async def end_call(call: CallControl, params: dict[str, Any]) -> str:
    """The agent wants to hang up: let its goodbye play out, then end the call."""
    call.end_call(EndReason.AGENT_END_CALL, HANGUP, wait_for_playout=True)
    return "call ending"


def default_tools() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register("end_call", end_call)
    return registry
