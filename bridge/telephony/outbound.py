"""Outbound calls, the pure part: the request, the per-number rate limit, the call context.

``POST /admin/calls`` (and ``bridge calls dial``) decode their body into
:class:`~bridge.admin.models.OutboundCall`; :func:`resolve` checks the ``from`` number is one this bridge
manages and picks the agent; :class:`RateLimiter` enforces
``telephony.outbound_calls_per_second`` per from-number (a token bucket, so an idle
number may place ``outbound_burst`` calls back to back); :func:`stream_parameters`
turns the call context into the ``<Parameter>`` s of the ``<Connect><Stream>`` TwiML
sent with the REST create, so the stream that comes back carries everything the call
needs (no state has to survive between placing the call and its answer).

Twilio limits what fits: each ``<Parameter>`` name + value under 500 characters, the
whole ``Twiml`` 4000.  Both are checked here and reported as InputError naming the
field, rather than as a Twilio error after the fact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bridge.admin.models import OutboundCall
from bridge.errors import InputError
from bridge.store import NumberRecord

MAX_PARAMETER: Final = 500  # name + value of one <Parameter>, Twilio's limit is "under 500"
MAX_TWIML: Final = 4000


@dataclass(frozen=True)
class ResolvedCall:
    """A validated outbound request with our number and the agent settled."""

    request: OutboundCall
    from_number: str
    agent_id: str
    ring_timeout_s: int


def resolve(
    req: OutboundCall,
    lookup: Callable[[str], NumberRecord | None],
    *,
    default_agent_id: str | None,
    ring_timeout_s: int,
) -> ResolvedCall:
    """Check the from-number is ours (``lookup`` = ``Store.get_number``), pick the agent."""
    key = req.from_ if req.from_ is not None else req.phone_number_id
    field = "from" if req.from_ is not None else "phone_number_id"
    assert key is not None  # __post_init__ guarantees one of them
    number = lookup(key)
    if number is None:
        raise InputError(field, f"{key} is not a number this bridge manages", status=422)
    if req.to == number.number:
        raise InputError("to", "is the same number as the one calling")
    agent_id = req.agent_id or number.agent_id or default_agent_id
    if not agent_id:
        raise InputError("agent_id", f"missing, and {number.number} has no agent assigned")
    return ResolvedCall(req, number.number, agent_id, req.ring_timeout or ring_timeout_s)


def stream_parameters(call: ResolvedCall) -> dict[str, str]:
    """The call context as stream ``<Parameter>`` s.

    Same names as an inbound call's (``caller_id`` = the other party, ``called_number``
    = our number, which the routing table knows), plus ``direction`` and the request's
    ``first_message``; each dynamic variable is a parameter of its own name, which the
    session passes on to the agent.
    """
    req = call.request
    params = {
        "agent_id": call.agent_id,
        "direction": "outbound",
        "caller_id": req.to,
        "called_number": call.from_number,
    }
    if req.first_message:
        params["first_message"] = req.first_message
    params.update(req.dynamic_variables)
    for name, value in params.items():
        if len(name) + len(value) >= MAX_PARAMETER:
            field = "first_message" if name == "first_message" else "dynamic_variables"
            raise InputError(
                field, f"{name!r} is too long to carry: name + value must be under {MAX_PARAMETER}"
            )
    return params


def check_twiml_size(twiml: str) -> str:
    if len(twiml) > MAX_TWIML:
        raise InputError(
            "dynamic_variables",
            f"the call context makes {len(twiml)} characters of TwiML; Twilio takes {MAX_TWIML}",
        )
    return twiml


# --------------------------------------------------------------------------- rate limit


class RateLimiter:
    """Token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int = 1):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def try_acquire(self, key: str, now: float) -> float:
        """0.0 when a call may go now (a token is spent), else seconds until one may."""
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def refund(self, key: str) -> None:
        """Give back the token of a call that was not placed after all (Twilio refused)."""
        if key in self._buckets:
            tokens, at = self._buckets[key]
            self._buckets[key] = (min(self.burst, tokens + 1.0), at)
