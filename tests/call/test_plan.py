"""Choosing the agent and the per-call settings for a stream."""

from __future__ import annotations

from bridge.call.plan import CallPlan, dynamic_variables, plan_for_stream
from bridge.config import Route
from bridge.routing import RoutingTable
from bridge.store import NumberRecord


def _table() -> RoutingTable:
    table = RoutingTable(
        None, [Route("+14155550100", "agent_static")], default_agent_id="agent_default"
    )
    table.apply(
        NumberRecord(
            number="+14155550100",
            first_message="Welcome!",
            language="fr",
            dynamic_variables={"tier": "gold"},
            fallback_number="+14155550199",
        )
    )
    return table


def test_parameter_names_the_agent_and_the_table_gives_the_overrides() -> None:
    plan = plan_for_stream({"agent_id": "agent_p", "called_number": "+14155550100"}, _table())
    assert plan == CallPlan(
        "agent_p",
        "parameter",
        first_message="Welcome!",
        language="fr",
        dynamic_variables={"tier": "gold"},
        fallback_number="+14155550199",
    )


def test_without_a_parameter_the_route_decides() -> None:
    plan = plan_for_stream({"called_number": "+14155550100"}, _table())
    assert plan is not None and (plan.agent_id, plan.source) == ("agent_static", "static")
    other = plan_for_stream({"called_number": "+14155550999"}, _table())
    assert other is not None and (other.agent_id, other.source) == ("agent_default", "default")


def test_nothing_routes_means_no_plan() -> None:
    assert plan_for_stream({"called_number": "+14155550100"}, RoutingTable()) is None


def test_dynamic_variables_precedence_and_reserved_names() -> None:
    plan = CallPlan("a", "table", dynamic_variables={"x": "config", "system__a": "1"})
    out, dropped = dynamic_variables(
        plan,
        {"x": "param", "agent_id": "a", "system__b": "2", "y": "param"},
        {"y": "fact", "call_sid": "CA1"},
    )
    assert out == {"x": "param", "y": "fact", "call_sid": "CA1"}
    assert sorted(dropped) == ["system__a", "system__b"]
