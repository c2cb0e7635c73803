"""May the bridge take this call?  The one place the voice webhook asks.

The webhook calls ``admission.check(to_number)`` before routing; ``None`` admits the
call, a :class:`Refusal` says how to turn it away: ``<Reject reason="busy">`` (the
default: unanswered, free for the caller), a spoken ``message``, or a ``<Dial>`` to an
overflow number.  ``services.admission`` is one chain of objects of this shape, built
once by :func:`bridge.app.build_bridge`: the drain, then any admission given to it,
then the concurrency caps (each link asks the one before it first).

A stream is asked again when it starts (streams can be opened without the webhook):
the :class:`StreamCheck` the session is given (:mod:`bridge.call.stream_gate`) verifies
the stream's token and asks ``services.stream_admission.admit_stream(number, call_sid)``
(the concurrency caps; never the drain: a call admitted before draining may start).
The session sees only the typed :class:`StreamStart` it passes and the
:class:`StreamRefusal` it gets back.
"""

from __future__ import annotations

from collections.abc import Mapping
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


class StreamAdmission(Protocol):
    def admit_stream(self, to_number: str, call_sid: str) -> Refusal | None:
        """May a stream that just started (its token verified) go on?"""
        ...


class Reservation(Protocol):
    """The webhook's second, asynchronous step once the chain admitted a routed call:
    a concurrency slot for the whole deployment (:mod:`bridge.telephony.shared_limits`)."""

    async def reserve(self, to_number: str, call_sid: str) -> Refusal | None: ...

    def release(self, call_sid: str) -> None:
        """The call is over (its final status): free its slot, without waiting."""
        ...


class StreamClaim(Protocol):
    """Single use of a verified stream token across instances (after the per-process check)."""

    def claim_stream(self, call_sid: str, token_mac: str, expires_at: float) -> bool:
        """False: the token or the call SID opened a stream before, anywhere."""
        ...


@dataclass(frozen=True)
class StreamStart:
    """What a stream's ``start`` claims: attacker-controlled until checked."""

    call_sid: str
    account_sid: str
    parameters: Mapping[str, str]  # customParameters exactly as received


@dataclass(frozen=True)
class StreamRefusal:
    """Why a started stream may not go on.

    ``trusted`` False: the start itself is not believed (bad token, replay, duplicate):
    close the socket with 1008 and touch nothing in the call's name (no agent, no REST,
    no record).  True: an authentic call refused by admission (``refusal`` says how to
    end it); it is recorded and ended like any other.
    """

    reason: str
    trusted: bool = False
    refusal: Refusal | None = None


class StreamCheck(Protocol):
    def __call__(self, start: StreamStart) -> StreamRefusal | None: ...


class AdmitAll:
    """Admission with no limits: every call (and stream) is taken."""

    def check(self, to_number: str) -> Refusal | None:
        return None

    def admit_stream(self, to_number: str, call_sid: str) -> Refusal | None:
        return None
