"""One call's transcript: what was said and done, in order, with times (pure).

The session adds an entry for each ``user_transcript``, ``agent_response``,
``agent_response_correction``, client tool call and its result, platform tool
(``agent_tool_response``), keypad press (the digit redacted unless
``telephony.store_digits``), transfer and the end.  :func:`assemble` merges in the
turns and barge-ins of :mod:`bridge.call.latency` when the call ends.

Bounded: at most :data:`~bridge.store.transcripts.MAX_ENTRIES` entries (the rest are
counted in a last ``truncated`` entry) and :data:`~bridge.store.transcripts.MAX_TEXT`
characters per text, so a long or chatty call costs a known amount of memory and row.

:func:`render_text` is the readable form (the admin API's ``text/plain`` and
``bridge calls show``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from bridge.store.transcripts import (
    MAX_ENTRIES,
    AgentCorrected,
    AgentSaid,
    AgentTool,
    AgentTurn,
    Ended,
    Interrupted,
    Keypad,
    LatencySummary,
    StageStats,
    ToolCalled,
    ToolResult,
    TranscriptEntry,
    Transferred,
    Truncated,
    UserSaid,
    cut,
)

_json = msgspec.json.Encoder()


class Transcript:
    """Entries as they happen; ``t`` is seconds since ``origin`` (set at stream start)."""

    def __init__(self, *, store_digits: bool = False, max_entries: int = MAX_ENTRIES) -> None:
        self.store_digits = store_digits
        self.max_entries = max_entries
        self.origin: float | None = None
        self.entries: list[TranscriptEntry] = []
        self.dropped = 0

    def _t(self, now: float) -> float:
        return round(max(0.0, now - self.origin), 3) if self.origin is not None else 0.0

    def _add(self, entry: TranscriptEntry) -> None:
        if len(self.entries) < self.max_entries - 1:  # room for the "truncated" entry
            self.entries.append(entry)
        else:
            self.dropped += 1

    def user(self, now: float, text: str) -> None:
        self._add(UserSaid(t=self._t(now), text=cut(text)))

    def agent(self, now: float, text: str) -> None:
        self._add(AgentSaid(t=self._t(now), text=cut(text)))

    def correction(self, now: float, original: str, corrected: str) -> None:
        self._add(AgentCorrected(t=self._t(now), original=cut(original), corrected=cut(corrected)))

    def tool_call(
        self, now: float, tool: str, tool_call_id: str, parameters: Mapping[str, Any]
    ) -> None:
        try:
            arguments = _json.encode(parameters).decode()
        except (TypeError, ValueError):  # parsed from JSON, so it encodes; but never raise
            arguments = "{…}"
        self._add(
            ToolCalled(
                t=self._t(now),
                tool=cut(tool),
                tool_call_id=cut(tool_call_id),
                arguments=cut(arguments),
            )
        )

    def tool_result(self, now: float, tool_call_id: str, result: str, is_error: bool) -> None:
        self._add(
            ToolResult(
                t=self._t(now),
                tool_call_id=cut(tool_call_id),
                result=cut(result),
                is_error=is_error,
            )
        )

    def agent_tool(self, now: float, tool: str, tool_type: str, is_error: bool) -> None:
        self._add(
            AgentTool(t=self._t(now), tool=cut(tool), tool_type=tool_type[:50], is_error=is_error)
        )

    def keypad(self, now: float, digit: str) -> None:
        self._add(Keypad(t=self._t(now), digit=digit if self.store_digits else "*"))

    def transfer(self, now: float, to: str) -> None:
        self._add(Transferred(t=self._t(now), to=cut(to)))


def assemble(
    transcript: Transcript,
    turns: Iterable[AgentTurn],
    barges: Iterable[Interrupted],
    *,
    end_t: float,
    reason: str,
) -> tuple[TranscriptEntry, ...]:
    """The stored transcript: every entry by time (stable), the end last, bounded."""
    merged: list[TranscriptEntry] = [*transcript.entries, *turns, *barges]
    merged.sort(key=lambda e: e.t)
    dropped = transcript.dropped
    room = transcript.max_entries - 2  # the end and a possible "truncated"
    if len(merged) > room:
        dropped += len(merged) - room
        del merged[room:]
    merged.append(Ended(t=end_t, reason=reason))
    if dropped:
        merged.append(Truncated(t=end_t, dropped=dropped))
    return tuple(merged)


# ---------------------------------------------------------------------- the text form


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def _line(e: TranscriptEntry) -> str:
    match e:
        case UserSaid(text=text):
            return f"caller: {text}"
        case AgentSaid(text=text):
            return f"agent: {text}"
        case AgentCorrected(corrected=corrected):
            return f"agent (cut off, said only): {corrected}"
        case ToolCalled(tool=tool, tool_call_id=cid, arguments=args):
            return f"tool call {tool} [{cid}] {args}"
        case ToolResult(tool_call_id=cid, result=result, is_error=err):
            return f"tool {'error' if err else 'result'} [{cid}]: {result}"
        case AgentTool(tool=tool, tool_type=kind, is_error=err):
            return f"agent tool {tool}{f' ({kind})' if kind else ''}{' failed' if err else ''}"
        case Keypad(digit=digit):
            return f"keypad: {digit}"
        case Transferred(to=to):
            return f"transfer to {to}"
        case Interrupted(clear_ms=clear_ms):
            return f"barge-in: caller spoke over the agent; clear sent after {_ms(clear_ms)}"
        case AgentTurn(agent_audio_ms=a, sent_ms=s, heard_ms=h):
            return f"turn: caller stopped; agent audio +{_ms(a)}, sent +{_ms(s)}, heard +{_ms(h)}"
        case Ended(reason=reason):
            return f"call ended: {reason}"
        case Truncated(dropped=n):
            return f"({n} more entries not kept)"
    raise AssertionError(e)


def _stage(name: str, s: StageStats | None) -> str:
    if s is None:
        return f"  {name:<13} -"
    return f"  {name:<13} median {s.median_ms:.0f} ms, worst {s.worst_ms:.0f} ms (n={s.n})"


def render_text(
    call_sid: str, entries: Sequence[TranscriptEntry], latency: LatencySummary | None
) -> str:
    lines = [f"Transcript of call {call_sid}"]
    lines += [f"{e.t:9.3f}s  {_line(e)}" for e in entries] or ["  (nothing recorded)"]
    if latency is not None:
        turns = f"{latency.turns} agent turn{'' if latency.turns == 1 else 's'}"
        lines.append(f"Latency ({turns}; from the caller stopping):")
        lines.append(_stage("agent audio", latency.agent_audio))
        lines.append(_stage("sent", latency.sent))
        lines.append(_stage("heard", latency.heard))
        lines.append(_stage("barge-in", latency.interruption))
    return "\n".join(lines) + "\n"
