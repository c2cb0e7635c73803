"""What the console shows, computed from records: plain words, masks, timelines, config.

Pure functions over the store's records and the frozen config; the templates only lay
out what these return.  Times are shown in UTC (the records' clock), durations as
``1:05`` or ``1:02:03``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from bridge.call.actions import EndReason
from bridge.store import CallRecord

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
