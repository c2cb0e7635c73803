"""Which agent a media stream talks to, and with which per-call settings.

The voice webhook picks the agent for the called number (``RoutingTable.route``) and
writes it into the TwiML as ``<Parameter name="agent_id">``, with ``caller_id`` and
``called_number``.  When the stream starts, :func:`plan_for_stream` reads them back and
looks the called number up again for its overrides (first message, language, variables,
fallback number): parameters carry only short facts, the table carries the rest, and a
stream that reaches another bridge instance than the webhook still gets both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.routing import RoutingTable
from bridge.twilio.stream_token import TOKEN_PARAMETER

# <Parameter>s the bridge itself writes; they steer the call and are not agent variables.
CONTROL_PARAMETERS = frozenset({"agent_id", "first_message", TOKEN_PARAMETER})
RESERVED_PREFIX = "system__"
# Twilio's own limits on <Parameter>: a name and value together under 500 characters.
# Real streams never exceed them; a forged or broken one is cut down to size here, so
# nothing unbounded reaches the agent's dynamic variables or the logs.
MAX_PARAMETER_CHARS = 500
MAX_PARAMETERS = 100


@dataclass(frozen=True)
class CallPlan:
    agent_id: str
    source: str  # "parameter" | "table" | "static" | "default"
    first_message: str | None = None
    language: str | None = None
    dynamic_variables: Mapping[str, str] = field(default_factory=dict)
    fallback_number: str | None = None
    record: bool = False  # record what the caller hears (the number's flag; bridge.recording)


def bounded_parameters(params: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """``customParameters`` within Twilio's limits, and how many were dropped."""
    kept: dict[str, str] = {}
    for name, value in params.items():
        if len(name) + len(value) < MAX_PARAMETER_CHARS and len(kept) < MAX_PARAMETERS:
            kept[name] = value
    return kept, len(params) - len(kept)


def plan_for_stream(params: Mapping[str, str], routing: RoutingTable) -> CallPlan | None:
    """The plan for a stream with ``customParameters`` ``params``; None = no agent."""
    route = routing.route(params.get("called_number", ""))
    agent_id = params.get("agent_id") or (route.agent_id if route else None)
    if not agent_id:
        return None
    source = "parameter" if params.get("agent_id") else route.source if route else "default"
    # A first_message parameter (an outbound call's own greeting) beats the number's.
    first_message = params.get("first_message") or None
    if route is None:
        return CallPlan(agent_id, source, first_message=first_message)
    return CallPlan(
        agent_id,
        source,
        first_message=first_message or route.first_message,
        language=route.language,
        dynamic_variables=route.dynamic_variables,
        fallback_number=route.fallback_number,
        record=route.record,
    )


def dynamic_variables(
    plan: CallPlan, params: Mapping[str, str], facts: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The variables sent to the agent, and the reserved names that were dropped.

    Precedence, lowest first: the number's configured variables, the stream's
    ``<Parameter>``s, then the call facts the bridge knows (``caller_id``,
    ``called_number``, ``call_sid``, ``stream_sid``), which nothing can spoof.
    """
    out: dict[str, str] = {}
    dropped: list[str] = []
    for source in (plan.dynamic_variables, params, facts):
        for k, v in source.items():
            if k.startswith(RESERVED_PREFIX):
                dropped.append(k)
            elif k not in CONTROL_PARAMETERS:
                out[k] = v
    return out, dropped
