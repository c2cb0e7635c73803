"""A call's transcript and per-turn latency, as stored with its record (typed, JSON).

Built by :mod:`bridge.call.transcript` and :mod:`bridge.call.latency`; kept here, below
both the call and the store, because the store reads and writes them.

Every entry has ``t``: seconds since the call's media stream started.  ``kind`` tells
them apart (``user``, ``agent``, ``agent_correction``, ``tool_call``, ``tool_result``,
``agent_tool``, ``keypad``, ``transfer``, ``interruption``, ``turn``, ``end``,
``truncated``).  Latencies are milliseconds measured at the bridge; ``None`` where a
stage did not happen (a reply cut off before it was sent or heard).
"""

from __future__ import annotations

from typing import Final

import msgspec

# What a stored transcript may hold: the entries of a long call beyond these are
# counted in a final ``truncated`` entry, and texts are cut (with "…").
MAX_ENTRIES: Final = 400
MAX_TEXT: Final = 500

# The latency stages of an agent turn, from the moment the caller stopped speaking:
# the agent's first audio reached the bridge, its first byte went to Twilio, the
# caller started hearing it; and of a barge-in, caller speech to ``clear`` sent.
STAGES: Final = ("agent_audio", "sent", "heard")
INTERRUPTION: Final = "interruption"


class _Entry(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    t: float


class UserSaid(_Entry, frozen=True, tag="user"):
    text: str


class AgentSaid(_Entry, frozen=True, tag="agent"):
    text: str


class AgentCorrected(_Entry, frozen=True, tag="agent_correction"):
    """After a barge-in: what the agent really got to say (``corrected``)."""

    original: str
    corrected: str


class ToolCalled(_Entry, frozen=True, tag="tool_call"):
    tool: str
    tool_call_id: str
    arguments: str  # the parameters as compact JSON, cut to MAX_TEXT


class ToolResult(_Entry, frozen=True, tag="tool_result"):
    tool_call_id: str
    result: str
    is_error: bool = False


class AgentTool(_Entry, frozen=True, tag="agent_tool"):
    """A tool the platform ran itself (``agent_tool_response``: end_call, transfers…)."""

    tool: str
    tool_type: str = ""
    is_error: bool = False


class Keypad(_Entry, frozen=True, tag="keypad"):
    digit: str  # "*" unless telephony.store_digits


class Transferred(_Entry, frozen=True, tag="transfer"):
    to: str


class Interrupted(_Entry, frozen=True, tag="interruption"):
    """A barge-in; ``t`` is when the caller started speaking (else when ``clear`` went)."""

    clear_ms: float | None = None  # caller speech start → ``clear`` sent to Twilio


class AgentTurn(_Entry, frozen=True, tag="turn"):
    """One agent reply; ``t`` is when the caller stopped speaking (the bridge's VAD)."""

    agent_audio_ms: float | None = None  # first agent audio received from the platform
    sent_ms: float | None = None  # its first byte written to Twilio
    heard_ms: float | None = None  # the caller started hearing it (Twilio's playout)


class Ended(_Entry, frozen=True, tag="end"):
    reason: str


class Truncated(_Entry, frozen=True, tag="truncated"):
    dropped: int


TranscriptEntry = (
    UserSaid
    | AgentSaid
    | AgentCorrected
    | ToolCalled
    | ToolResult
    | AgentTool
    | Keypad
    | Transferred
    | Interrupted
    | AgentTurn
    | Ended
    | Truncated
)


class StageStats(msgspec.Struct, frozen=True, kw_only=True):
    n: int
    median_ms: float
    worst_ms: float


class LatencySummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A call's turns summarised per stage (stages that never completed are absent)."""

    turns: int = 0
    agent_audio: StageStats | None = None
    sent: StageStats | None = None
    heard: StageStats | None = None
    interruption: StageStats | None = None


def cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
