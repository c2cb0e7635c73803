"""Turn latency (pure): which agent audio is a reply, and each stage from the caller's stop."""

from __future__ import annotations

import base64

from bridge.audio import signals
from bridge.audio.g711 import ulaw_encode
from bridge.audio.vad import CallerVad
from bridge.call.latency import TurnLatency
from bridge.store.transcripts import AgentTurn, Interrupted, StageStats

SPEECH = base64.b64encode(
    ulaw_encode(signals.to_pcm16(signals.tone(440.0, 0.02, 8000, -20.0)))
).decode()
QUIET = base64.b64encode(b"\xff" * 160).decode()


class Line:
    """A caller line: one frame every 20 ms into the tracker, the clock in steps of 20 ms."""

    def __init__(self, hangover_ms: int = 100) -> None:
        self.lat = TurnLatency(CallerVad(min_speech_ms=40, hangover_ms=hangover_ms))
        self.now = 0.0

    def frames(self, payload: str, n: int) -> None:
        for _ in range(n):
            self.now = round(self.now + 0.02, 6)
            self.lat.caller_frame(payload, self.now)

    def at(self, t: float) -> float:
        self.now = t
        return t


def test_a_reply_is_measured_from_the_last_speech_frame() -> None:
    line = Line(hangover_ms=100)
    line.frames(SPEECH, 25)  # last speech frame arrives at 0.50
    line.frames(QUIET, 10)  # the VAD decides at 0.60 (5 quiet frames); dated 0.50
    assert line.lat.agent_audio(line.at(0.90), "audio-7", 800) is True
    line.lat.written(0.901)
    assert not line.lat.awaiting_write
    # The mark after those 800 bytes (100 ms) echoes at 1.05: it started playing at 0.95.
    line.lat.mark_echoed("audio-7", 1.05)
    turns, barges = line.lat.entries(origin=0.0)
    assert turns == [AgentTurn(t=0.5, agent_audio_ms=400.0, sent_ms=401.0, heard_ms=450.0)]
    assert barges == []
    # Later audio of the same reply is not a new turn.
    assert line.lat.agent_audio(1.0, "audio-8", 800) is False


def test_heard_is_never_before_sent() -> None:
    line = Line()
    line.frames(SPEECH, 10)
    line.frames(QUIET, 10)
    line.lat.agent_audio(0.5, "audio-1", 8000)  # one second of audio in one event
    line.lat.written(0.5)
    line.lat.mark_echoed("audio-1", 1.2)  # faster than playout could be: clamp to sent
    (turn,), _ = line.lat.entries(0.0)
    assert turn.heard_ms == turn.sent_ms


def test_audio_during_the_hangover_is_a_reply_when_the_silence_was_the_end() -> None:
    line = Line(hangover_ms=300)
    line.frames(SPEECH, 10)  # last speech at 0.20
    line.frames(QUIET, 5)  # 0.30: still within the hangover
    assert line.lat.agent_audio(line.now, "audio-1", 160) is True  # tentative
    line.frames(QUIET, 15)  # the end is decided, dated 0.20: the reply stands
    (turn,), _ = line.lat.entries(0.0)
    assert turn.t == 0.2 and turn.agent_audio_ms == 100.0


def test_audio_during_a_pause_is_no_reply_when_the_caller_goes_on() -> None:
    line = Line(hangover_ms=300)
    line.frames(SPEECH, 10)
    line.frames(QUIET, 5)
    assert line.lat.agent_audio(line.now, "audio-1", 160) is True  # tentative
    line.frames(SPEECH, 10)  # the caller goes on: the agent talked over them
    assert line.lat.agent_audio(line.now, "audio-2", 160) is False
    line.frames(QUIET, 20)
    assert line.lat.entries(0.0) == ([], [])
    # The agent talked through that utterance: its next audio is not a reply to it.
    assert line.lat.agent_audio(line.now, "audio-3", 160) is False


def test_an_agent_talking_over_the_caller_is_not_replying() -> None:
    line = Line()
    line.frames(SPEECH, 5)
    assert line.lat.agent_audio(line.now, "audio-1", 160) is False
    line.frames(SPEECH, 5)
    line.frames(QUIET, 10)
    assert line.lat.agent_audio(line.now, "audio-2", 160) is False
    assert line.lat.entries(0.0) == ([], [])


def test_a_barge_in_is_timed_from_speech_start_to_clear_written() -> None:
    line = Line()
    line.frames(QUIET, 5)
    line.frames(SPEECH, 5)  # speech starts with the frame at 0.12
    line.lat.interrupted(line.at(0.30))
    assert line.lat.awaiting_write
    line.lat.written(0.305)
    line.frames(SPEECH, 5)
    line.frames(QUIET, 10)
    assert line.lat.agent_audio(line.at(1.0), "audio-9", 160) is True  # the next reply
    _, barges = line.lat.entries(0.0)
    assert barges == [Interrupted(t=0.12, clear_ms=185.0)]


def test_a_reply_cut_by_a_barge_in_is_never_heard() -> None:
    line = Line()
    line.frames(SPEECH, 5)
    line.frames(QUIET, 10)
    line.lat.agent_audio(line.now, "audio-1", 800)
    line.lat.written(line.now)
    line.frames(SPEECH, 5)
    line.lat.interrupted(line.now)
    line.lat.mark_echoed("audio-1", line.now + 0.01)  # echoed by the clear
    (turn,), _ = line.lat.entries(0.0)
    assert turn.heard_ms is None and turn.sent_ms is not None


def test_summary_and_observations() -> None:
    line = Line()
    for delay in (0.3, 0.5, 0.4):
        line.frames(SPEECH, 5)
        line.frames(QUIET, 10)
        stop = line.now - 0.2
        line.lat.agent_audio(stop + delay, "m", 160)
        line.lat.written(stop + delay)
    s = line.lat.summary()
    assert s is not None and s.turns == 3
    assert s.agent_audio == StageStats(n=3, median_ms=400.0, worst_ms=500.0)
    assert s.heard is None and s.interruption is None
    stages = [stage for stage, _ in line.lat.observations()]
    assert stages.count("agent_audio") == 3 and stages.count("sent") == 3
    assert "heard" not in stages


def test_turns_kept_are_bounded() -> None:
    lat = TurnLatency(CallerVad(min_speech_ms=20, hangover_ms=20), max_turns=2)
    now = 0.0
    for _ in range(4):
        now += 0.02
        lat.caller_frame(SPEECH, now)
        now += 0.02
        lat.caller_frame(QUIET, now)
        lat.agent_audio(now, "m", 160)
    assert len(lat.turns) == 2 and lat.dropped == 2
