"""Energy VAD: utterance boundaries in audio time, trimming, chunking independence."""

from __future__ import annotations

import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.audio.signals import FULL_SCALE, tone_pcm16
from bridge.emulator.platform.vad import EnergyVad, SpeechEnded, SpeechStarted, frame_dbfs

RATE = 8000


def silence(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


def speech(ms: int, dbfs: float = -12.0) -> bytes:
    return tone_pcm16(300, ms / 1000, RATE, dbfs)


def test_frame_level_follows_the_signals_convention() -> None:
    assert math.isclose(frame_dbfs(speech(20, dbfs=-12.0)), -12.0, abs_tol=0.2)
    assert frame_dbfs(silence(20)) == -math.inf
    assert frame_dbfs(b"") == -math.inf


def test_one_utterance_start_end_and_trimmed_audio() -> None:
    vad = EnergyVad(RATE, min_speech_ms=60, end_silence_ms=200)
    events = vad.process(silence(100) + speech(400) + silence(300))
    assert events == [SpeechStarted(at_ms=100), SpeechEnded(at_ms=500, audio=speech(400))]
    ended = events[1]
    assert isinstance(ended, SpeechEnded) and ended.duration_ms(RATE) == 400
    assert not vad.in_speech


def test_short_blips_and_quiet_audio_are_not_speech() -> None:
    vad = EnergyVad(RATE, threshold_dbfs=-40, min_speech_ms=60)
    assert vad.process(speech(40) + silence(200) + speech(500, dbfs=-50) + silence(600)) == []


def test_pause_shorter_than_end_silence_keeps_one_utterance() -> None:
    vad = EnergyVad(RATE, min_speech_ms=40, end_silence_ms=300)
    events = vad.process(speech(200) + silence(200) + speech(200) + silence(400))
    ends = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ends) == 1 and ends[0].duration_ms(RATE) == 600


def test_max_utterance_cuts_long_speech() -> None:
    vad = EnergyVad(RATE, min_speech_ms=20, max_utterance_ms=500)
    ends = [e for e in vad.process(speech(1200)) if isinstance(e, SpeechEnded)]
    assert [e.duration_ms(RATE) for e in ends] == [500, 500]


def test_end_now_closes_an_utterance_in_progress() -> None:
    vad = EnergyVad(RATE, min_speech_ms=20)
    assert vad.end_now() is None
    vad.process(speech(300) + silence(100))
    ended = vad.end_now()
    assert ended is not None and ended.duration_ms(RATE) == 300 and not vad.in_speech


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=30))
def test_chunking_does_not_change_the_result(cuts: list[int]) -> None:
    audio = silence(100) + speech(300) + silence(600) + speech(200) + silence(600)
    whole = EnergyVad(RATE).process(audio)
    vad, events, pos = EnergyVad(RATE), [], 0
    for size in cuts * 20:
        events += vad.process(audio[pos : pos + size])
        pos += size
    events += vad.process(audio[pos:])
    assert events == whole
    assert len([e for e in whole if isinstance(e, SpeechEnded)]) == 2


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=-96.0, max_value=0.0))
def test_a_frame_is_speech_exactly_when_its_level_is_above_the_threshold(
    threshold: float,
) -> None:
    # Frames of one constant sample value v have RMS v: step through the boundary.
    near = int(FULL_SCALE / math.sqrt(2.0) * 10.0 ** (threshold / 20.0))
    for v in range(max(0, near - 2), min(32767, near + 3) + 1):
        frame = struct.pack("<h", v) * (RATE // 50)
        vad = EnergyVad(RATE, threshold_dbfs=threshold, min_speech_ms=20)
        started = vad.process(frame) != []
        assert started == (frame_dbfs(frame) > threshold), (threshold, v)
