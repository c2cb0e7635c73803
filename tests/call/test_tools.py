"""The client-tool registry: registration, results, errors, and end_call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from bridge.call.actions import HANGUP, Disposition, EndReason
from bridge.call.tools import CallControl, ToolRegistry, default_tools


@dataclass
class RecordingCall:
    """A CallControl that records what tools ask of it (the session is tested elsewhere)."""

    ended: list[tuple[EndReason, Disposition, bool]] = field(default_factory=list)
    call_sid: str = "CA1"
    stream_sid: str = "MZ1"
    agent_id: str = "agent_1"
    parameters: Mapping[str, str] = field(default_factory=dict)

    def end_call(
        self,
        reason: EndReason = EndReason.AGENT_END_CALL,
        disposition: Disposition = HANGUP,
        *,
        wait_for_playout: bool = True,
    ) -> None:
        self.ended.append((reason, disposition, wait_for_playout))

    def send_to_agent(self, message: msgspec.Struct) -> None:
        raise AssertionError("not used")

    def play_to_caller(self, ulaw: bytes, label: str) -> None:
        raise AssertionError("not used")


async def test_end_call_ends_after_playout() -> None:
    call = RecordingCall()
    result, is_error = await default_tools().run("end_call", call, {"reason": "done"})
    assert (result, is_error) == ("call ending", False)
    assert call.ended == [(EndReason.AGENT_END_CALL, HANGUP, True)]


async def test_results_are_text_or_json_and_exceptions_become_errors() -> None:
    registry = ToolRegistry()

    @registry.tool("lookup")
    async def lookup(call: CallControl, params: dict[str, Any]) -> object:
        if params.get("id") == "bad":
            raise LookupError("no such order")
        return {"order": params["id"], "status": "shipped"}

    ok = await registry.run("lookup", RecordingCall(), {"id": "42"})
    assert ok == ('{"order":"42","status":"shipped"}', False)
    assert await registry.run("lookup", RecordingCall(), {"id": "bad"}) == ("no such order", True)
    missing = await registry.run("nope", RecordingCall(), {})
    assert missing[1] is True and "nope" in missing[0]


def test_registration_is_explicit_about_replacing() -> None:
    registry = default_tools()

    async def other(call: CallControl, params: dict[str, Any]) -> str:
        return "x"

    with pytest.raises(ValueError, match="already registered"):
        registry.register("end_call", other)
    registry.register("end_call", other, replace=True)
    registry.register("transfer_call", other)
    assert registry.names == {"end_call", "transfer_call"}
    with pytest.raises(ValueError):
        registry.register("", other)
