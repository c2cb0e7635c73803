"""A call's transcript and latency summary survive the store, on both backends."""

from __future__ import annotations

from bridge.store import CallRecord, Store
from bridge.store.transcripts import (
    AgentCorrected,
    AgentTurn,
    Ended,
    Interrupted,
    Keypad,
    LatencySummary,
    StageStats,
    ToolCalled,
    UserSaid,
)

ENTRIES = (
    UserSaid(t=0.5, text="héllo – “quoted”"),
    AgentTurn(t=0.6, agent_audio_ms=400.0, sent_ms=None, heard_ms=None),
    ToolCalled(t=1.0, tool="lookup", tool_call_id="c1", arguments='{"a":1}'),
    Interrupted(t=1.5, clear_ms=None),
    AgentCorrected(t=1.6, original="a b c", corrected="a"),
    Keypad(t=2.0, digit="*"),
    Ended(t=3.0, reason="caller_hangup"),
)
SUMMARY = LatencySummary(turns=1, agent_audio=StageStats(n=1, median_ms=400.0, worst_ms=400.0))


def test_transcript_and_latency_round_trip(db: str) -> None:
    with Store(db, linger_s=0) as store:
        store.record_call(CallRecord(call_sid="CA_t", status="in-progress"))
        assert store.flush()
        got = store.get_call("CA_t")
        assert got is not None and got.transcript == () and got.latency is None
        store.update_call("CA_t", status="completed", transcript=ENTRIES, latency=SUMMARY)
        assert store.flush()
    with Store(db, linger_s=0) as again:  # read back from the database, not memory
        got = again.get_call("CA_t")
        assert got is not None
        assert got.transcript == ENTRIES and got.latency == SUMMARY
        # listings leave transcripts out (their size); the latency summary stays
        (listed,) = again.list_calls().items
        assert listed.transcript == () and listed.latency == SUMMARY
