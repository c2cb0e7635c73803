"""Twilio call status callbacks → the call record's status (pure).

Status callbacks can arrive out of order (``ringing`` after ``in-progress``) and a
final status must never be replaced, so every callback endpoint applies the one rule
here instead of writing ``CallStatus`` as it comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# Twilio's call progress, in order; a later status never goes back to an earlier one.
STATUS_ORDER: Final = ("queued", "initiated", "ringing", "in-progress")
FINAL_STATUSES: Final = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


def progress(current: str | None, reported: str) -> str | None:
    """The status to record when Twilio reports ``reported`` (None: keep ``current``).

    A final status is never replaced.  Twilio's ``initiated`` is recorded as ``queued``.
    """
    new = "queued" if reported == "initiated" else reported
    if new not in STATUS_ORDER and new not in FINAL_STATUSES:
        return None
    if current in FINAL_STATUSES:
        return None
    if new in FINAL_STATUSES:
        return new
    if current in STATUS_ORDER and STATUS_ORDER.index(new) <= STATUS_ORDER.index(current):
        return None
    return new


def status_update(
    current_status: str | None, current_end_reason: str | None, params: Mapping[str, str]
) -> dict[str, object] | None:
    """Record fields for a status callback's form ``params``; None when nothing changes."""
    new = progress(current_status, params.get("CallStatus", ""))
    if new is None:
        return None
    fields: dict[str, object] = {"status": new}
    duration = params.get("CallDuration", "")
    if duration.isdigit():
        fields["duration_s"] = float(duration)
    if new in FINAL_STATUSES and current_end_reason is None:
        fields["end_reason"] = new.replace("-", "_")
    return fields
