"""The caller's timeline, turn latency and verdict, from hand-built records (no sockets)."""

from __future__ import annotations

import re

from bridge.dialer.timeline import clean, events, turns, utterances
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult, StreamRecord
from bridge.emulator.twilio.script import ScriptEvent
from bridge.emulator.twilio.sources import tone
from bridge.emulator.twilio.twiml import Hangup

AGENT = "agent_test"


def _result(*, agent: str | None = AGENT) -> tuple[CallResult, StreamRecord]:
    res = CallResult("CA1", "AC1", "inbound", "+15550001111", "+15550002222", 1.0, 0.0)
    params = {"agent_id": agent} if agent else {}
    stream = StreamRecord("wss://b/twilio/media", "ws://b/twilio/media", "MZ1", params)
    stream.started_at = 0.05
    res.streams.append(stream)
    return res, stream


def _texts(res: CallResult, now: float | None = None) -> list[str]:
    return [f"{e.who}: {e.text}" for e in events(res, now)]


def test_reply_latency_runs_from_the_end_of_the_talk_to_the_first_audio_heard() -> None:
    res, stream = _result()
    stream.playout.push_audio(tone(440, 1.0), 0.1)  # greeting 0.1 → 1.1
    res.script_events += [ScriptEvent(2.0, "talk-start", "turn 1"), ScriptEvent(3.0, "talk-end")]
    stream.playout.push_audio(tone(440, 0.8), 3.45)  # reply 3.45 → 4.25
    (turn,) = turns(res)
    assert (turn.talk_start, turn.talk_end, turn.reply_at) == (2.0, 3.0, 3.45)
    assert turn.latency_s is not None and abs(turn.latency_s - 0.45) < 1e-9
    texts = _texts(res)
    assert "agent: greeting heard 50 ms after connecting" in texts
    assert "agent: reply heard 450 ms after the caller stopped" in texts
    assert "agent: stops (0.8 s heard)" in texts
    assert [e.t for e in events(res)] == sorted(e.t for e in events(res))


def test_a_reply_still_arriving_is_one_utterance_and_its_end_waits_until_it_settled() -> None:
    res, stream = _result()
    for i in range(5):  # 100 ms chunks arriving 0.2 s apart: gaps shorter than a pause
        stream.playout.push_audio(tone(440, 0.1), 0.1 + 0.2 * i)
    assert len(utterances(res)) == 1
    assert not any("stops" in t for t in _texts(res, now=1.3))  # heard until 1.0: not yet
    assert "agent: stops (0.9 s heard)" in _texts(res, now=1.6)
    assert _texts(res, now=0.5) == []  # nothing is shown before it settled


def test_barge_in_and_the_clear_that_cuts_the_agent() -> None:
    res, stream = _result()
    stream.playout.push_audio(tone(440, 3.0), 0.1)
    res.script_events += [ScriptEvent(1.0, "barge-in", "turn 1"), ScriptEvent(1.0, "talk-start")]
    stream.playout.clear(1.06)
    texts = _texts(res)
    assert any(re.fullmatch(r"caller: barges in, talking over the agent \(.*\)", t) for t in texts)
    assert "bridge: clear: the agent's audio is cut 60 ms after the caller started talking" in texts
    assert any(re.fullmatch(r"agent: cut off \(\d\.\d s heard\)", t) for t in texts), texts


def test_verdicts() -> None:
    res, stream = _result()
    stream.ended_by, stream.close_code = "caller", 1000
    res.outcome, res.ended_at = Outcome.COMPLETED, 5.0
    assert clean(res) is None
    assert "call: ended: the caller hung up" in _texts(res)

    res, stream = _result(agent=None)
    res.outcome = Outcome.COMPLETED
    assert clean(res) == "no agent took the call to +15550001111: the stream names no agent"

    res, _ = _result()
    res.streams.clear()
    res.experience.append(Hangup())
    res.outcome = Outcome.COMPLETED
    problem = clean(res)
    assert problem is not None and problem.startswith("no agent took the call to +15550001111")
    assert "Hangup" in problem

    res, stream = _result()
    stream.ended_by, stream.close_code = "bridge", 1011
    res.outcome = Outcome.COMPLETED
    assert clean(res) == "the bridge closed the media stream with code 1011"
