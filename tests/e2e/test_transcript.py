"""The transcript of a scripted call, end to end: a barge-in and a client tool call."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import BargeIn, CallScript, WaitForAgent
from bridge.store.transcripts import (
    AgentCorrected,
    AgentSaid,
    AgentTurn,
    Ended,
    Interrupted,
    ToolCalled,
    ToolResult,
    UserSaid,
)
from tests.e2e.conftest import script_time, tone_ulaw
from tests.fixtures.bridge import BridgeUnderTest, bridge_config, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator

GREETING = (
    "Hello and welcome. This greeting goes on for quite a while, so that there is "
    "plenty of time to talk over it and cut it short."
)
ANSWER = "Let me check that for you"


@pytest.fixture
async def bridge(platform_emulator: PlatformEmulator) -> AsyncIterator[BridgeUnderTest]:
    cfg = bridge_config(platform_emulator, BRIDGE_ADMIN_TOKEN="transcript-admin-token-0123456789")
    async with running_bridge(platform_emulator, cfg) as b:
        yield b


async def test_a_scripted_conversation_gives_the_transcript_in_order(
    bridge: BridgeUnderTest,
) -> None:
    # The agent greets; the caller talks over it; the agent listens, answers, and ends
    # the call with the bridge's end_call client tool.
    agent = bridge.platform.create_agent(
        first_message=GREETING,
        behaviour={
            "mode": "silent",
            "steps": [
                {"type": "listen"},
                {"type": "play", "ms": 800, "text": ANSWER},
                {"type": "wait_playout"},
                {"type": "tool_call", "tool_name": "end_call", "parameters": {"why": "done"}},
            ],
        },
        client_tools=("end_call",),
    )
    script = CallScript.of(
        BargeIn(tone_ulaw(0.8), after_s=0.6), WaitForAgent(timeout_s=10), max_duration_s=30
    )
    res = await bridge.call(agent, script, speed=1.0)
    assert res.outcome is Outcome.COMPLETED, res.reason
    rec = bridge.record(res.call_sid)
    assert rec.end_reason == "agent_end_call"
    entries = rec.transcript
    assert [e.t for e in entries] == sorted(e.t for e in entries)
    kinds = [type(e) for e in entries]
    assert kinds == [
        AgentSaid,  # the greeting
        Interrupted,  # the caller talks over it: clear
        AgentCorrected,  # what the agent got to say of it
        AgentTurn,  # the caller stops; the answer's latency
        UserSaid,  # the caller's words (the emulator does no speech recognition)
        AgentSaid,  # the answer
        ToolCalled,
        ToolResult,
        Ended,
    ], entries

    greeting, barge, fix, turn, user, answer, call, result, end = entries
    assert isinstance(greeting, AgentSaid) and greeting.text == GREETING
    # The barge-in is dated when the caller started talking (t counts from the stream's
    # start), and the clear went out once both VADs had heard 60 ms of it (3 frames,
    # the first dated at its arrival: 40 ms later), plus the relay.
    assert isinstance(barge, Interrupted) and barge.clear_ms is not None
    assert res.stream is not None and res.stream.started_at is not None
    assert abs(barge.t - (script_time(res, "barge-in") - res.stream.started_at)) < 0.03
    assert 40 - 1 <= barge.clear_ms <= 40 + 30
    assert isinstance(fix, AgentCorrected) and fix.original == GREETING
    assert fix.corrected and GREETING.startswith(fix.corrected) and fix.corrected != GREETING
    assert isinstance(user, UserSaid) and user.text.endswith(" s of caller speech")
    # 0.8 s of tone, give or take the frame the resampler's tail rings into.
    assert abs(float(user.text.split()[-5]) - 0.8) <= 0.02
    assert isinstance(turn, AgentTurn) and turn.heard_ms is not None
    assert isinstance(answer, AgentSaid) and answer.text == ANSWER
    assert isinstance(call, ToolCalled) and call.tool == "end_call"
    assert call.arguments == '{"why":"done"}'
    assert isinstance(result, ToolResult) and result.tool_call_id == call.tool_call_id
    assert result.result == "call ending" and not result.is_error
    assert isinstance(end, Ended) and end.reason == "agent_end_call"

    # The admin API serves it, as JSON and as text.
    r = await bridge.admin("GET", f"/calls/{res.call_sid}/transcript")
    assert r.status_code == 200
    assert [e["kind"] for e in r.json()["entries"]] == [
        "agent",
        "interruption",
        "agent_correction",
        "turn",
        "user",
        "agent",
        "tool_call",
        "tool_result",
        "end",
    ]
    async with bridge.client() as http:
        r = await http.get(
            f"/admin/calls/{res.call_sid}/transcript", headers={"accept": "text/plain"}
        )
    lines = r.text.splitlines()
    assert lines[0] == f"Transcript of call {res.call_sid}"
    assert lines[1].endswith(f"agent: {GREETING}")
    assert "barge-in: caller spoke over the agent" in lines[2]
    assert lines[-6].endswith("call ended: agent_end_call")
