"""The transcript core: entries in order, bounded, digits redacted, the readable form."""

from __future__ import annotations

from bridge.call.transcript import Transcript, assemble, render_text
from bridge.store.transcripts import (
    MAX_TEXT,
    AgentSaid,
    AgentTurn,
    Ended,
    Interrupted,
    Keypad,
    LatencySummary,
    StageStats,
    ToolCalled,
    Truncated,
    UserSaid,
)


def test_entries_are_timed_from_the_origin_and_merged_by_time() -> None:
    tr = Transcript()
    tr.origin = 100.0
    tr.user(101.5, "hello")
    tr.tool_call(102.0, "lookup", "t1", {"order": 42})
    tr.agent(103.25, "hi there")
    turns = [AgentTurn(t=1.2, agent_audio_ms=400.0, sent_ms=401.0, heard_ms=450.0)]
    barges = [Interrupted(t=2.5, clear_ms=90.0)]
    out = assemble(tr, turns, barges, end_t=5.0, reason="caller_hangup")
    assert out == (
        AgentTurn(t=1.2, agent_audio_ms=400.0, sent_ms=401.0, heard_ms=450.0),
        UserSaid(t=1.5, text="hello"),
        ToolCalled(t=2.0, tool="lookup", tool_call_id="t1", arguments='{"order":42}'),
        Interrupted(t=2.5, clear_ms=90.0),
        AgentSaid(t=3.25, text="hi there"),
        Ended(t=5.0, reason="caller_hangup"),
    )


def test_keypad_digits_are_redacted_unless_stored() -> None:
    redacted, stored = Transcript(), Transcript(store_digits=True)
    for tr in (redacted, stored):
        tr.origin = 0.0
        tr.keypad(1.0, "7")
    assert redacted.entries == [Keypad(t=1.0, digit="*")]
    assert stored.entries == [Keypad(t=1.0, digit="7")]


def test_texts_and_entries_are_bounded() -> None:
    tr = Transcript(max_entries=5)
    tr.origin = 0.0
    tr.user(0.0, "x" * (MAX_TEXT * 3))
    assert len(tr.entries[0].text) == MAX_TEXT  # type: ignore[union-attr]
    for i in range(10):
        tr.agent(float(i), "hi")
    assert len(tr.entries) == 4 and tr.dropped == 7
    out = assemble(tr, [AgentTurn(t=0.5, agent_audio_ms=1.0)], [], end_t=20.0, reason="x")
    assert len(out) == 5
    assert out[-2:] == (Ended(t=20.0, reason="x"), Truncated(t=20.0, dropped=9))


def test_the_text_form_reads_in_order_with_the_latency_summary() -> None:
    entries = (
        UserSaid(t=1.5, text="hello"),
        AgentTurn(t=1.5, agent_audio_ms=400.0, sent_ms=401.0, heard_ms=None),
        Ended(t=4.0, reason="agent_ended"),
    )
    summary = LatencySummary(turns=1, agent_audio=StageStats(n=1, median_ms=400.0, worst_ms=400.0))
    text = render_text("CA1", entries, summary)
    lines = text.splitlines()
    assert lines[0] == "Transcript of call CA1"
    assert lines[1].endswith("1.500s  caller: hello")
    assert "agent audio +400 ms, sent +401 ms, heard +-" in lines[2]
    assert lines[3].endswith("call ended: agent_ended")
    assert "agent audio   median 400 ms, worst 400 ms (n=1)" in text
    assert "heard         -" in text
