"""A CallControl that records what telephony code asked of the call (no sockets)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bridge.call.actions import HANGUP, Disposition, EndReason


@dataclass
class FakeClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeCall:
    call_sid: str = "CA0123456789abcdef0123456789abcdef"
    stream_sid: str = "MZ0123456789abcdef0123456789abcdef"
    agent_id: str = "agent_test"
    parameters: Mapping[str, str] = field(
        default_factory=lambda: {"called_number": "+14155550100", "caller_id": "+14155550111"}
    )
    ended: list[tuple[EndReason, Disposition, bool]] = field(default_factory=list)
    to_agent: list[msgspec.Struct] = field(default_factory=list)
    played: list[tuple[bytes, str]] = field(default_factory=list)

    def end_call(
        self,
        reason: EndReason = EndReason.AGENT_END_CALL,
        disposition: Disposition = HANGUP,
        *,
        wait_for_playout: bool = True,
    ) -> None:
        self.ended.append((reason, disposition, wait_for_playout))

    def send_to_agent(self, message: msgspec.Struct) -> None:
        self.to_agent.append(message)

    def play_to_caller(self, ulaw: bytes, label: str) -> None:
        self.played.append((ulaw, label))

    def texts(self) -> list[tuple[str, Any]]:
        return [(type(m).__name__, getattr(m, "text", None)) for m in self.to_agent]
