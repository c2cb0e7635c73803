"""Plain words, masks, timelines and the configuration view."""

from __future__ import annotations

import dataclasses

import pytest

from bridge.call.actions import EndReason
from bridge.config import load_config
from bridge.console import present
from bridge.store import CallRecord
from bridge.store.transcripts import (
    AgentCorrected,
    AgentSaid,
    AgentTurn,
    Ended,
    Interrupted,
    Keypad,
    LatencySummary,
    StageStats,
    ToolCalled,
    ToolResult,
    Truncated,
    UserSaid,
)


def test_every_end_reason_has_plain_words() -> None:
    for reason in EndReason:
        words = present.end_reason_words(reason.value, "completed")
        assert words == present.END_REASONS[reason.value]
        assert "_" not in words and words.endswith(".")


def test_end_reason_words_for_live_unknown_and_missing() -> None:
    assert present.end_reason_words(None, "in-progress") == "The call is still in progress."
    assert "No answer" in present.end_reason_words(None, "no-answer")
    assert present.end_reason_words("new_reason", "completed") == "Ended: new reason."


def test_numbers_are_masked_but_for_the_last_four_digits() -> None:
    assert present.mask_number("+14155550123") == "+1 ••• ••• 0123"
    assert "555" not in present.mask_number("+14155550123")
    assert present.mask_number(None) == "unknown"
    assert present.mask_number("client:alice") == "••••••••••ce"  # not a number: 2 shown


def test_durations_and_times() -> None:
    assert present.duration(None) == "—"
    assert present.duration(65.4) == "1:05"
    assert present.duration(3723) == "1:02:03"
    assert present.when(0) == "1970-01-01 00:00:00"


def test_timeline_orders_the_record_and_its_events() -> None:
    rec = CallRecord(
        call_sid="CA1",
        started_at=100.0,
        answered_at=101.0,
        first_audio_ms=250.0,
        ended_at=130.0,
        status="completed",
        end_reason="transfer",
        interruptions=2,
        events=({"at": 5.0, "event": "transfer", "to": "+14155550199"},),
    )
    entries = present.timeline(rec)
    titles = [e.title for e in entries]
    assert titles == [
        "Call started",
        "Media stream connected",
        "First agent audio sent",
        "Transferred",
        "Call ended",
        "Caller interrupted the agent",
    ]
    assert [e.at for e in entries[:5]] == [0.0, 1.0, 1.25, 6.0, 30.0]
    assert entries[3].detail == "to: +14155550199"
    assert entries[4].tone == "ok" and entries[5].detail == "2 times"


def test_config_view_hides_secrets_and_url_passwords() -> None:
    cfg = load_config(
        env={
            "BRIDGE_ADMIN_TOKEN": "a" * 40,
            "TWILIO_AUTH_TOKEN": "twilio-secret-value",
            "ELEVENLABS_BASE_URL": "https://user:pw-in-url@platform.example",
        }
    )
    items = {i.key: i for i in present.config_items(cfg)}
    assert items["admin.token"].value == "set (hidden)" and items["admin.token"].secret
    assert items["platform.api_key"].value == "not set"
    assert items["platform.base_url"].value == "https://user:•••@platform.example"
    shown = " ".join(i.value for i in items.values())
    for secret in ("a" * 40, "twilio-secret-value", "pw-in-url"):
        assert secret not in shown
    # Every leaf key of the config is listed.
    sections = [f.name for f in dataclasses.fields(cfg) if f.name != "routes"]
    assert all(any(k.startswith(f"{s}.") for k in items) for s in sections)


def test_hide_url_password_leaves_other_strings() -> None:
    assert present.hide_url_password("postgresql://u:p@db:5432/x") == "postgresql://u:•••@db:5432/x"
    assert present.hide_url_password("https://h/x") == "https://h/x"
    assert present.hide_url_password("bridge.db") == "bridge.db"


# ---------------------------------------------------------------------------- transcript

TRANSCRIPT = (
    AgentSaid(t=0.2, text="Hello, front desk."),
    Interrupted(t=0.9, clear_ms=42.4),
    AgentCorrected(t=1.0, original="Hello, front desk.", corrected="Hello,"),
    AgentTurn(t=2.0, agent_audio_ms=300.0, sent_ms=301.0, heard_ms=350.0),
    UserSaid(t=2.1, text="I need a room."),
    AgentSaid(t=2.4, text="Let me check."),
    ToolCalled(t=2.5, tool="lookup", tool_call_id="tc1", arguments='{"n":1}'),
    ToolResult(t=2.7, tool_call_id="tc1", result="no rooms", is_error=True),
    Keypad(t=3.0, digit="*"),
    AgentTurn(t=4.0, agent_audio_ms=600.0, sent_ms=None, heard_ms=None),
    AgentTurn(t=5.0),  # cut off before any audio came
    Ended(t=6.0, reason="caller_hangup"),
    Truncated(t=6.0, dropped=3),
)


def test_transcript_lines_name_who_and_number_the_turns() -> None:
    lines = present.transcript_lines(TRANSCRIPT)
    assert len(lines) == len(TRANSCRIPT)
    assert [(ln.who, ln.kind) for ln in lines] == [
        ("Agent", "agent"),
        ("Caller", "event"),
        ("Agent", "agent"),
        ("Turn 1", "turn"),
        ("Caller", "caller"),
        ("Agent", "agent"),
        ("Tool", "tool"),
        ("Tool", "bad"),
        ("Keypad", "event"),
        ("Turn 2", "turn"),
        ("Turn 3", "turn"),
        ("Call", "end"),
        ("Call", "event"),
    ]
    assert lines[1].detail == "the agent's audio was cleared after 42 ms"
    assert lines[2].text == "Hello," and "Hello, front desk." in lines[2].detail
    assert lines[3].detail == "agent audio 300 ms · sent 301 ms · heard 350 ms"
    assert lines[6].text == 'lookup {"n":1}'
    assert lines[8].text == "Pressed *"  # as stored: the digit stays redacted
    assert lines[9].detail == "agent audio 600 ms · sent — · heard —"
    assert lines[11].text == "The caller hung up."
    assert lines[12].text == "3 more entries were not kept"
    assert [ln.at for ln in lines] == [e.t for e in TRANSCRIPT]


def test_latency_chart_has_one_bar_per_turn_scaled_to_the_axis() -> None:
    chart = present.latency_chart(TRANSCRIPT)
    assert chart is not None
    assert [b.turn for b in chart.bars] == [1, 2, 3]
    first, second, third = chart.bars
    # Stacked and cumulative: each segment starts where the previous stage ended.
    assert [s.stage for s in first.segments] == ["agent_audio", "sent", "heard"]
    assert first.segments[0].y == pytest.approx(first.segments[1].y + first.segments[1].height)
    assert first.top == first.segments[-1].y
    height = chart.plot_bottom - first.top
    assert height == pytest.approx(sum(s.height for s in first.segments))
    # The axis is round (0, 200, 400, 600 ms: at most five steps) and reaches the worst.
    assert [t.label for t in chart.ticks] == [f"{k * 200} ms" for k in range(4)]
    assert chart.ticks[-1].y == pytest.approx(chart.plot_top)
    assert abs(height / (chart.plot_bottom - second.top) - 350 / 600) < 1e-9
    assert second.total_ms == 600.0 and [s.stage for s in second.segments] == ["agent_audio"]
    assert third.segments == () and third.total_ms is None and third.top == chart.plot_bottom
    # Bars sit side by side inside the plot, in time order.
    assert chart.plot_left <= first.x < second.x < third.x
    assert third.x + third.width <= chart.width
    assert "heard by the caller 350 ms" in first.label


def test_latency_chart_without_turns_is_none_and_the_axis_step_is_round() -> None:
    assert present.latency_chart(TRANSCRIPT[:3]) is None
    assert present.latency_chart(()) is None
    assert present._axis_step(90) == 20
    assert present._axis_step(1234) == 250
    assert present._axis_step(4000) == 1000


def test_latency_summary_lists_the_stages_that_completed() -> None:
    summary = LatencySummary(
        turns=3,
        agent_audio=StageStats(n=2, median_ms=450.0, worst_ms=600.0),
        heard=StageStats(n=1, median_ms=350.0, worst_ms=350.0),
        interruption=StageStats(n=1, median_ms=42.0, worst_ms=42.0),
    )
    rows = present.latency_summary(summary)
    assert [(r.stage, r.n, r.median_ms, r.worst_ms) for r in rows] == [
        ("agent_audio", 2, 450.0, 600.0),
        ("heard", 1, 350.0, 350.0),
        ("interruption", 1, 42.0, 42.0),
    ]
    assert present.latency_summary(None) == []
