"""May the bridge take this call?  The one place the voice webhook asks.

The webhook calls ``admission.check(to_number)`` before routing; ``None`` admits the
call, a :class:`Refusal` says how to turn it away: ``<Reject reason="busy">`` (the
default: unanswered, free for the caller), a spoken ``message``, or a ``<Dial>`` to an
overflow number.  Draining for shutdown and concurrency caps plug in here by replacing
``app.state.services.admission`` with their own object of this shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Refusal:
    reason: str  # for logs and metrics: "draining", "over_capacity", …
    dial: str | None = None  # transfer to this number instead of refusing
    message: str | None = None  # say this, then hang up (answered call)
    reject_reason: str = "busy"


class Admission(Protocol):
    def check(self, to_number: str) -> Refusal | None: ...


class AdmitAll:
    """Admission with no limits: every call is taken."""

    def check(self, to_number: str) -> Refusal | None:
        return None
