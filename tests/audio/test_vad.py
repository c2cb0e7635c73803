"""The caller VAD: speech and its end, dated to the frames that made them (no clock)."""

from __future__ import annotations

from bridge.audio import signals
from bridge.audio.g711 import ulaw_encode
from bridge.audio.vad import FRAME_MS, CallerVad, SpeechEnded, SpeechStarted

SILENCE = b"\xff" * 160


def tone(dbfs: float = -20.0) -> bytes:
    return ulaw_encode(signals.to_pcm16(signals.tone(440.0, FRAME_MS / 1000, 8000, dbfs)))


def feed(vad: CallerVad, frames: list[bytes], t0: float = 0.0) -> list[object]:
    """Frame k arrives at t0 + (k + 1) * 20 ms: when its audio has been spoken."""
    events = []
    for k, f in enumerate(frames):
        ev = vad.frame(f, round(t0 + (k + 1) * FRAME_MS / 1000, 6))
        if ev is not None:
            events.append(ev)
    return events


def test_silence_is_never_speech() -> None:
    assert feed(CallerVad(), [SILENCE] * 100) == []


def test_speech_is_dated_from_its_first_frame_to_its_last() -> None:
    vad = CallerVad(min_speech_ms=60, hangover_ms=300)
    frames = [SILENCE] * 5 + [tone()] * 25 + [SILENCE] * 20
    events = feed(vad, frames)
    # Speech frames are 6..30 (arrivals 0.12 .. 0.60); the start is decided on the
    # third and the end after 15 silent frames, but both are dated back.
    assert events == [SpeechStarted(at=0.12), SpeechEnded(at=0.6)]
    assert not vad.in_speech


def test_a_pause_shorter_than_the_hangover_is_not_an_end() -> None:
    vad = CallerVad(hangover_ms=300)
    frames = [tone()] * 10 + [SILENCE] * 10 + [tone()] * 10 + [SILENCE] * 15
    events = feed(vad, frames)
    assert events == [SpeechStarted(at=0.02), SpeechEnded(at=0.6)]


def test_quiet_since_names_the_last_speech_frame_during_the_hangover() -> None:
    vad = CallerVad(hangover_ms=300)
    feed(vad, [tone()] * 10)
    assert vad.in_speech and vad.quiet_since is None
    vad.frame(SILENCE, 0.22)
    assert vad.quiet_since == 0.2


def test_a_blip_shorter_than_min_speech_is_ignored() -> None:
    vad = CallerVad(min_speech_ms=60)
    assert feed(vad, [tone(), tone(), SILENCE] * 10) == []


def test_the_threshold_decides_what_is_speech() -> None:
    assert feed(CallerVad(threshold_dbfs=-40), [tone(-46.0)] * 10) == []
    assert feed(CallerVad(threshold_dbfs=-40), [tone(-34.0)] * 10) == [SpeechStarted(at=0.02)]
