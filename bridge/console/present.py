"""What the console shows, computed from records: plain words, masks, timelines, config.

Pure functions over the store's records and the frozen config; the templates only lay
out what these return.  Times are shown in UTC (the records' clock), durations as
``1:05`` or ``1:02:03``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from bridge.call.actions import EndReason
from bridge.store import CallRecord
from bridge.store.transcripts import (
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
)

# What each end reason means, for an operator.
END_REASONS: Final[dict[str, str]] = {
    EndReason.CALLER_HANGUP.value: "The caller hung up.",
    EndReason.AGENT_ENDED.value: "The agent closed the conversation.",
    EndReason.AGENT_END_CALL.value: "The agent ended the call after saying goodbye.",
    EndReason.AGENT_FAILED.value: "The agent could not be reached or failed during the call; "
    "the caller got the fallback (apology or transfer).",
    EndReason.TRANSFER.value: "The call was transferred to another number.",
    EndReason.ADMIN_HANGUP.value: "An operator hung up the call (admin API or console).",
    EndReason.TWILIO_PROTOCOL.value: "Twilio sent too many malformed frames; the bridge "
    "ended the call.",
    EndReason.NO_START.value: "The media stream never started.",
    EndReason.SHUTDOWN.value: "The bridge was shutting down.",
    EndReason.VOICEMAIL.value: "An answering machine picked up.",
    EndReason.MAX_DURATION.value: "The call reached its maximum length.",
    EndReason.SILENCE.value: "The caller said nothing for too long.",
    EndReason.STREAM_REFUSED.value: "The media stream was refused (bad or reused stream "
    "token, or a duplicate).",
    EndReason.OVER_CAPACITY.value: "All lines were busy: a concurrent-call limit was full.",
    EndReason.STREAM_STALLED.value: "Twilio stopped sending audio; the stream was ended.",
    EndReason.TWILIO_NOT_READING.value: "Twilio stopped reading the bridge's audio.",
    EndReason.INSTANCE_LOST.value: "The bridge instance handling the call stopped "
    "heartbeating; another instance closed its record.",
}
STATUS_WORDS: Final[dict[str, str]] = {
    "queued": "Queued",
    "ringing": "Ringing",
    "in-progress": "In progress",
    "completed": "Completed",
    "busy": "Busy",
    "no-answer": "No answer",
    "failed": "Failed",
    "canceled": "Canceled",
}
# End reasons that mean the call went as it should (a green badge).
CLEAN_REASONS: Final = frozenset(
    {"caller_hangup", "agent_ended", "agent_end_call", "transfer", "admin_hangup", "voicemail"}
)
_EVENT_WORDS: Final[dict[str, str]] = {
    "dtmf": "Keypad digit",
    "dtmf_delivered": "Keypad entry sent to the agent",
    "dtmf_unsent": "Keypad entry not delivered",
    "answered_by": "Answered by",
    "duration_warning": "Duration warning played",
    "limit": "Limit reached",
    "transfer": "Transferred",
}


def end_reason_words(reason: str | None, status: str) -> str:
    if reason is None:
        if status in ("queued", "ringing", "in-progress"):
            return "The call is still in progress."
        return f"No end reason was recorded (Twilio status: {STATUS_WORDS.get(status, status)})."
    return END_REASONS.get(reason, f"Ended: {reason.replace('_', ' ')}.")


def outcome_tone(rec: CallRecord) -> str:
    """A badge colour: ``live``, ``ok``, ``bad`` or ``neutral``."""
    if rec.live:
        return "live"
    if rec.end_reason in CLEAN_REASONS or (rec.end_reason is None and rec.status == "completed"):
        return "ok"
    if rec.status in ("failed", "busy", "no-answer") or rec.end_reason is not None:
        return "bad"
    return "neutral"


def mask_number(number: str | None) -> str:
    """``+14155550123`` → ``+1 ••• ••• 0123``: enough to tell calls apart, not to dial."""
    if not number:
        return "unknown"
    if not number.startswith("+") or len(number) < 8:
        return "•" * max(0, len(number) - 2) + number[-2:]
    return f"{number[:2]} ••• ••• {number[-4:]}"


def when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def ago(seconds: float) -> str:
    """How long ago, roughly: ``just now``, ``12 s ago``, ``3 min ago``, ``2 h ago``…"""
    s = max(0, round(seconds))
    if s < 2:
        return "just now"
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 2 * 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


@dataclass(frozen=True)
class TimelineEntry:
    at: float | None  # seconds since the call started (None: not known)
    title: str
    detail: str = ""
    tone: str = "neutral"


def timeline(rec: CallRecord) -> list[TimelineEntry]:
    """The call's events in order: the record's own times, then its event list."""
    t0 = rec.started_at
    out: list[TimelineEntry] = [
        TimelineEntry(0.0, "Call started", f"{rec.direction}, {when(t0)} UTC"),
    ]
    if rec.answered_at is not None:
        out.append(
            TimelineEntry(rec.answered_at - t0, "Media stream connected", _agent(rec), "live")
        )
        if rec.first_audio_ms is not None:
            at = rec.answered_at - t0 + rec.first_audio_ms / 1000
            out.append(
                TimelineEntry(at, "First agent audio sent", f"{rec.first_audio_ms:.0f} ms after")
            )
    answered = rec.answered_at - t0 if rec.answered_at is not None else 0.0
    for ev in rec.events:
        out.append(_event_entry(ev, answered))
    if rec.interruptions:
        n = rec.interruptions
        out.append(TimelineEntry(None, "Caller interrupted the agent", f"{n} time{'s' * (n != 1)}"))
    if rec.ended_at is not None:
        tone = "ok" if rec.end_reason in CLEAN_REASONS else "bad"
        out.append(
            TimelineEntry(
                rec.ended_at - t0, "Call ended", end_reason_words(rec.end_reason, rec.status), tone
            )
        )
    known = sorted((e for e in out if e.at is not None), key=lambda e: e.at or 0.0)
    return known + [e for e in out if e.at is None]


def _agent(rec: CallRecord) -> str:
    return f"agent {rec.agent_id}" if rec.agent_id else "no agent resolved"


def _event_entry(ev: dict[str, Any], answered: float) -> TimelineEntry:
    kind = str(ev.get("event", "event"))
    at = ev.get("at")
    offset = answered + float(at) if isinstance(at, int | float) else None
    detail = ", ".join(f"{k}: {v}" for k, v in ev.items() if k not in ("at", "event"))
    tone = "bad" if kind in ("dtmf_unsent", "limit") else "neutral"
    return TimelineEntry(
        offset, _EVENT_WORDS.get(kind, kind.replace("_", " ").capitalize()), detail, tone
    )


# ---------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ConfigItem:
    key: str
    value: str
    secret: bool = False


def config_items(cfg: Any, prefix: str = "") -> Iterator[ConfigItem]:
    """Every key of a config dataclass, with secrets hidden and URL passwords masked."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            yield from config_items(value, f"{key}.")
        elif f.metadata.get("secret"):
            yield ConfigItem(key, "set (hidden)" if value else "not set", secret=True)
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                yield from config_items(item, f"{key}[{i}].")
        else:
            yield ConfigItem(key, _shown(value))


def _shown(value: object) -> str:
    if value is None:
        return "not set"
    if isinstance(value, str):
        return hide_url_password(value)
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)


def hide_url_password(value: str) -> str:
    """``postgresql://u:pw@h/db`` → ``postgresql://u:•••@h/db``; other strings as they are."""
    if "://" not in value:
        return value
    try:
        u = urlsplit(value)
        if u.password is None:
            return value
        host = u.hostname or ""
        netloc = f"{u.username}:•••@{host}" + (f":{u.port}" if u.port else "")
    except ValueError:
        return "(hidden: not a readable URL)"
    return urlunsplit(u._replace(netloc=netloc))


# ---------------------------------------------------------------------------- transcript


@dataclass(frozen=True)
class TranscriptLine:
    at: float  # seconds since the media stream started
    who: str  # Caller, Agent, Tool, Keypad, Call…
    text: str
    kind: str  # caller, agent, tool, turn, event, end, bad: the line's look
    detail: str = ""


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f} ms"


def transcript_lines(entries: Iterable[TranscriptEntry]) -> list[TranscriptLine]:
    """The stored transcript as lines to read, in order (agent turns numbered)."""
    out: list[TranscriptLine] = []
    turn = 0
    for e in entries:
        match e:
            case UserSaid(text=text):
                out.append(TranscriptLine(e.t, "Caller", text, "caller"))
            case AgentSaid(text=text):
                out.append(TranscriptLine(e.t, "Agent", text, "agent"))
            case AgentCorrected(original=original, corrected=corrected):
                said = corrected or "(nothing)"
                out.append(
                    TranscriptLine(
                        e.t, "Agent", said, "agent", f"Cut off by the caller; it meant: {original}"
                    )
                )
            case ToolCalled(tool=tool, arguments=args, tool_call_id=cid):
                out.append(TranscriptLine(e.t, "Tool", f"{tool} {args}", "tool", f"call {cid}"))
            case ToolResult(result=result, is_error=err, tool_call_id=cid):
                kind = "bad" if err else "tool"
                label = "failed" if err else "result"
                out.append(TranscriptLine(e.t, "Tool", result, kind, f"{label} of call {cid}"))
            case AgentTool(tool=tool, tool_type=tool_type, is_error=err):
                what = f"The agent ran {tool}" + (f" ({tool_type})" if tool_type else "")
                out.append(
                    TranscriptLine(e.t, "Tool", what + (", which failed" if err else ""), "tool")
                )
            case Keypad(digit=digit):
                out.append(TranscriptLine(e.t, "Keypad", f"Pressed {digit}", "event"))
            case Transferred(to=to):
                out.append(TranscriptLine(e.t, "Call", f"Transferred to {to}", "event"))
            case Interrupted(clear_ms=clear_ms):
                out.append(
                    TranscriptLine(
                        e.t,
                        "Caller",
                        "Spoke over the agent",
                        "event",
                        f"the agent's audio was cleared after {_ms(clear_ms)}",
                    )
                )
            case AgentTurn(agent_audio_ms=a, sent_ms=s, heard_ms=h):
                turn += 1
                detail = f"agent audio {_ms(a)} · sent {_ms(s)} · heard {_ms(h)}"
                out.append(
                    TranscriptLine(e.t, f"Turn {turn}", "Caller stopped speaking", "turn", detail)
                )
            case Ended(reason=reason):
                out.append(
                    TranscriptLine(e.t, "Call", end_reason_words(reason, "completed"), "end")
                )
            case Truncated(dropped=n):
                out.append(TranscriptLine(e.t, "Call", f"{n} more entries were not kept", "event"))
    return out


# ---------------------------------------------------------------------------- latency chart

# The stages of an agent turn as stacked segments: each ends where its cumulative
# latency (from the caller stopping) ends, so a bar's top is when the caller heard it.
STAGE_WORDS: Final[dict[str, str]] = {
    "agent_audio": "Agent's first audio",
    "sent": "Sent to Twilio",
    "heard": "Heard by the caller",
}


@dataclass(frozen=True)
class Segment:
    stage: str
    y: float
    height: float
    ms: float  # the stage's cumulative latency


@dataclass(frozen=True)
class Bar:
    turn: int  # 1-based
    at: float  # the turn's t: seconds since the stream started
    x: float
    width: float
    segments: tuple[Segment, ...]
    stages: dict[str, float | None]
    total_ms: float | None  # the last stage reached; None: no reply at all
    top: float  # the y of the bar's top (its baseline when it has no segment)
    label: str  # for the bar's tooltip / screen readers


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class LatencyChart:
    width: float
    height: float
    plot_left: float
    plot_top: float
    plot_bottom: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]


@dataclass(frozen=True)
class StageSummary:
    stage: str
    words: str
    n: int
    median_ms: float
    worst_ms: float


_STEPS: Final = (10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000)


def _axis_step(top_ms: float) -> float:
    """A round tick step that puts at most five ticks under ``top_ms``."""
    for step in _STEPS:
        if top_ms / step <= 5:
            return float(step)
    return float(math.ceil(top_ms / 5 / 10000) * 10000)


def latency_chart(
    entries: Iterable[TranscriptEntry], *, width: float = 480.0, height: float = 200.0
) -> LatencyChart | None:
    """Bar geometry (SVG user units) for the agent turns of a transcript; None without turns."""
    turns = [e for e in entries if isinstance(e, AgentTurn)]
    if not turns:
        return None
    left, top, bottom = 56.0, 22.0, height - 24.0
    values = [v for t in turns for v in (t.agent_audio_ms, t.sent_ms, t.heard_ms) if v is not None]
    step = _axis_step(max(values, default=0.0) or 1.0)
    top_ms = step * max(1, math.ceil(max(values, default=0.0) / step))
    scale = (bottom - top) / top_ms
    slot = (width - left - 8.0) / len(turns)
    bar_w = min(48.0, slot * 0.62)
    bars = []
    for i, t in enumerate(turns):
        stages = {"agent_audio": t.agent_audio_ms, "sent": t.sent_ms, "heard": t.heard_ms}
        segments = []
        below = 0.0
        for stage, ms in stages.items():
            if ms is None:
                continue
            upper = max(ms, below)  # cumulative; never draw a segment downwards
            segments.append(
                Segment(stage, bottom - upper * scale, (upper - below) * scale, round(ms, 1))
            )
            below = upper
        reached = [v for v in stages.values() if v is not None]
        total = reached[-1] if reached else None
        label = f"Turn {i + 1} at +{t.t:.2f} s: " + ", ".join(
            f"{STAGE_WORDS[k].lower()} {_ms(v)}" for k, v in stages.items()
        )
        bars.append(
            Bar(
                turn=i + 1,
                at=t.t,
                x=left + slot * i + (slot - bar_w) / 2,
                width=bar_w,
                segments=tuple(segments),
                stages=stages,
                total_ms=total,
                top=min((seg.y for seg in segments), default=bottom),
                label=label,
            )
        )
    n_ticks = round(top_ms / step)
    ticks = tuple(Tick(bottom - k * step * scale, f"{k * step:.0f} ms") for k in range(n_ticks + 1))
    return LatencyChart(width, height, left, top, bottom, tuple(bars), ticks)


def latency_summary(summary: LatencySummary | None) -> list[StageSummary]:
    """The call's median and worst per stage (the stages that ever completed)."""
    if summary is None:
        return []
    words = {**STAGE_WORDS, "interruption": "Barge-in to clear"}
    out = []
    for stage, label in words.items():
        stats: StageStats | None = getattr(summary, stage)
        if stats is not None:
            out.append(StageSummary(stage, label, stats.n, stats.median_ms, stats.worst_ms))
    return out
