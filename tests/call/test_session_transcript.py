"""The session keeps the transcript and times each turn (fake clock: exact figures)."""

from __future__ import annotations

from bridge.audio import signals
from bridge.audio.g711 import ulaw_encode
from bridge.call.actions import EndReason, RunTool, Transfer, UpdateRecord
from bridge.store.transcripts import (
    AgentCorrected,
    AgentSaid,
    AgentTool,
    AgentTurn,
    Ended,
    Interrupted,
    Keypad,
    LatencySummary,
    StageStats,
    ToolCalled,
    ToolResult,
    Transferred,
    UserSaid,
)
from bridge.twilio import media as twilio
from tests.call.conftest import STREAM_SID, Harness, make_harness

SPEECH = ulaw_encode(signals.to_pcm16(signals.tone(440.0, 0.02, 8000, -20.0)))
QUIET = b"\xff" * 160
REPLY = b"\x10" * 800  # 100 ms of agent audio (ulaw_8000 out)


def frames(h: Harness, frame: bytes, n: int) -> None:
    for _ in range(n):
        h.clock.now = round(h.clock.now + 0.02, 6)
        h.media(frame)


def dtmf(h: Harness, digit: str) -> None:
    h.twilio(
        twilio.encode(
            twilio.Dtmf(
                sequenceNumber=h._next_seq(),
                streamSid=STREAM_SID,
                dtmf=twilio.DtmfBody(digit=digit),
            )
        )
    )


def agent_event(h: Harness, kind: str, body: dict[str, object]) -> None:
    h.agent({"type": kind, **body})


def final_record(h: Harness) -> dict[str, object]:
    fields: dict[str, object] = {}
    for a in h.take():
        if isinstance(a, UpdateRecord):
            fields.update(a.fields)
    return fields


def test_a_scripted_call_gives_its_transcript_and_turn_latency() -> None:
    h = make_harness(vad_hangover_ms=200)
    h.clock.now = 1000.0
    h.active()  # the stream started at 1000.0: t is measured from there
    frames(h, SPEECH, 25)  # the caller speaks; the last speech frame arrives at 1000.50
    frames(h, QUIET, 10)  # the VAD decides (10 quiet frames), dated 1000.50
    agent_event(h, "user_transcript", {"user_transcription_event": {"user_transcript": "hi"}})
    h.clock.now = 1000.90
    agent_event(h, "agent_response", {"agent_response_event": {"agent_response": "Hello!"}})
    h.audio(REPLY, 1)
    # The reply's first audio is marked at once, so its echo dates when it was heard.
    out = [twilio.parse_from_server(f) for f in h.twilio_frames()]
    assert isinstance(out[-1], twilio.OutMark) and out[-1].mark.name == "audio-1"
    h.clock.now = 1000.902
    h.session.twilio_written()
    h.clock.now = 1001.05
    h.mark("audio-1")  # playout reached the mark: the first byte played from 1000.95

    h.agent(
        {
            "type": "client_tool_call",
            "client_tool_call": {
                "tool_name": "lookup",
                "tool_call_id": "c1",
                "parameters": {"order": 42},
            },
        }
    )
    (run,) = [a for a in h.take() if isinstance(a, RunTool)]
    h.clock.now = 1001.2
    h.session.tool_finished(run.tool_call_id, "found", False)
    dtmf(h, "5")

    # A barge-in: the agent speaks, the caller talks over it, the agent is interrupted.
    h.clock.now = 1001.5
    h.audio(REPLY, 2)
    h.session.twilio_written()
    frames(h, SPEECH, 5)  # speech starts with the frame at 1001.52
    h.clock.now = 1001.6
    agent_event(h, "interruption", {"interruption_event": {"event_id": 2}})
    h.clock.now = 1001.61
    h.session.twilio_written()  # the clear went out
    agent_event(
        h,
        "agent_response_correction",
        {
            "agent_response_correction_event": {
                "original_agent_response": "Let me explain everything",
                "corrected_agent_response": "Let me",
            }
        },
    )
    agent_event(
        h,
        "agent_tool_response",
        {"agent_tool_response": {"tool_name": "end_call", "tool_type": "system"}},
    )
    h.clock.now = 1002.0
    h.stop()

    rec = final_record(h)
    assert rec["transcript"] == (
        AgentTurn(t=0.5, agent_audio_ms=400.0, sent_ms=402.0, heard_ms=450.0),
        UserSaid(t=0.7, text="hi"),
        AgentSaid(t=0.9, text="Hello!"),
        ToolCalled(t=1.05, tool="lookup", tool_call_id="c1", arguments='{"order":42}'),
        ToolResult(t=1.2, tool_call_id="c1", result="found", is_error=False),
        Keypad(t=1.2, digit="*"),
        Interrupted(t=1.52, clear_ms=90.0),
        AgentCorrected(t=1.61, original="Let me explain everything", corrected="Let me"),
        AgentTool(t=1.61, tool="end_call", tool_type="system", is_error=False),
        Ended(t=2.0, reason="agent_end_call"),
    )
    assert rec["latency"] == LatencySummary(
        turns=1,
        agent_audio=StageStats(n=1, median_ms=400.0, worst_ms=400.0),
        sent=StageStats(n=1, median_ms=402.0, worst_ms=402.0),
        heard=StageStats(n=1, median_ms=450.0, worst_ms=450.0),
        interruption=StageStats(n=1, median_ms=90.0, worst_ms=90.0),
    )


def test_digits_are_kept_when_the_operator_stores_them() -> None:
    h = make_harness(store_digits=True)
    h.active()
    dtmf(h, "9")
    h.stop()
    entries = final_record(h)["transcript"]
    assert isinstance(entries, tuple)
    assert [e for e in entries if isinstance(e, Keypad)] == [Keypad(t=0.0, digit="9")]


def test_a_transfer_and_the_end_close_the_transcript() -> None:
    h = make_harness()
    h.active()
    h.clock.now += 1.5
    h.session.request_end(EndReason.TRANSFER, Transfer("+14155550199"), wait_for_playout=False)
    assert final_record(h)["transcript"] == (
        Transferred(t=1.5, to="+14155550199"),
        Ended(t=1.5, reason="transfer"),
    )
