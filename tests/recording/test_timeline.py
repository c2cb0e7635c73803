"""The recorder's core: placement on the caller's timeline, clear cutting, gaps, WAV."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from bridge.audio.g711 import ulaw_decode
from bridge.recording.file import WavFile
from bridge.recording.timeline import FRAME_SAMPLES, RATE, Recorder
from bridge.recording.wav import wav_header

T0 = 1000.0  # local monotonic time of the stream's start


def ulaw_ramp(n: int, first: int = 0) -> bytes:
    """``n`` distinct-ish mu-law bytes, never silence (0xFF / 0x7F)."""
    return bytes(((first + i) % 100) + 1 for i in range(n))


def channels(pcm: bytes) -> tuple[np.ndarray, np.ndarray]:
    x = np.frombuffer(pcm, dtype="<i2")
    return x[0::2], x[1::2]


def pcm_of(ulaw: bytes) -> np.ndarray:
    return np.frombuffer(ulaw_decode(ulaw), dtype="<i2")


def caller_frames(
    rec: Recorder, frames: int, *, first: int = 0, skip: frozenset[int] = frozenset()
) -> bytes:
    """Frames first..first+frames-1 sent on time (arriving 1 ms late); returns the audio."""
    audio = bytearray()
    for k in range(first, first + frames):
        data = ulaw_ramp(FRAME_SAMPLES, k * 7)
        if k not in skip:
            rec.caller(data, k * 20, T0 + k * 0.02 + 0.001)
        audio += data
    return bytes(audio)


def test_caller_channel_is_the_payloads_in_order() -> None:
    rec = Recorder(T0)
    audio = caller_frames(rec, 50)
    out = rec.take(T0 + 1.5)
    left, right = channels(out)
    assert len(left) == 50 * FRAME_SAMPLES
    assert np.array_equal(left, pcm_of(audio))
    assert not right.any()  # the agent said nothing


def test_missing_frames_leave_silence_where_they_belonged() -> None:
    rec = Recorder(T0)
    audio = caller_frames(rec, 20, skip=frozenset({5, 6, 12}))
    left, _ = channels(rec.finish(T0 + 0.5))
    assert len(left) == 20 * FRAME_SAMPLES
    for k in range(20):
        got = left[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]
        want = pcm_of(audio[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES])
        if k in (5, 6, 12):
            assert not got.any(), k
        else:
            assert np.array_equal(got, want), k


def test_frames_without_usable_timestamps_follow_each_other() -> None:
    rec = Recorder(T0)
    a, b = ulaw_ramp(160), ulaw_ramp(160, 50)
    rec.caller(a, 0, T0)
    rec.caller(b, 0, T0 + 0.02)  # a repeated timestamp: appended, never overwriting
    rec.caller(a, None, T0 + 0.04)
    left, _ = channels(rec.finish(T0 + 0.06))
    assert np.array_equal(left, pcm_of(a + b + a))


def test_agent_audio_plays_back_to_back_from_when_it_was_sent() -> None:
    rec = Recorder(T0)
    caller_frames(rec, 100)  # 2 s of caller audio, arriving ~1 ms after being stamped
    first, second = ulaw_ramp(800), ulaw_ramp(1600, 30)
    rec.agent(first, T0 + 0.5)  # 100 ms at 0.5 s
    rec.agent(second, T0 + 0.52)  # queued behind it: starts at 0.6 s, not 0.52 s
    rec.agent(first, T0 + 1.5)  # the line was idle: starts when sent
    _, right = channels(rec.finish(T0 + 2.0))
    # Caller time 0 is the start's arrival (T0); frames arriving late do not move it.
    at = round(0.5 * RATE)
    assert not right[:at].any()
    assert np.array_equal(right[at : at + 800], pcm_of(first))
    assert np.array_equal(right[at + 800 : at + 2400], pcm_of(second))
    assert not right[at + 2400 : round(1.5 * RATE)].any()
    at2 = round(1.5 * RATE)
    assert np.array_equal(right[at2 : at2 + 800], pcm_of(first))


def test_clear_cuts_what_had_not_played_yet() -> None:
    rec = Recorder(T0)
    caller_frames(rec, 100)
    speech = ulaw_ramp(8000)  # 1 s sent at once at 0.2 s
    rec.agent(speech, T0 + 0.2)
    rec.clear(T0 + 0.5)  # 0.3 s of it played
    after = ulaw_ramp(400, 9)
    rec.agent(after, T0 + 0.5)  # the next answer starts at once, not after the cut speech
    _, right = channels(rec.finish(T0 + 2.0))
    at, cut = round(0.2 * RATE), round(0.5 * RATE)
    assert np.array_equal(right[at:cut], pcm_of(speech[: cut - at]))
    assert np.array_equal(right[cut : cut + 400], pcm_of(after))
    assert not right[cut + 400 :].any()
    assert rec.agent_cleared == len(speech) - (cut - at)


def test_audio_still_queued_when_the_stream_ends_was_never_heard() -> None:
    rec = Recorder(T0)
    caller_frames(rec, 25)  # 0.5 s
    rec.agent(ulaw_ramp(8000), T0 + 0.3)
    out = rec.finish(T0 + 0.5)
    _, right = channels(out)
    played = round(0.5 * RATE) - round(0.3 * RATE)
    assert np.count_nonzero(right) == played
    assert len(right) == 25 * FRAME_SAMPLES  # the call is as long as it lasted


def test_take_hands_out_final_samples_only_and_keeps_little() -> None:
    rec = Recorder(T0)
    caller_frames(rec, 50)  # 1 s
    rec.agent(ulaw_ramp(16000), T0 + 0.1)  # 2 s queued at 0.1 s
    out = rec.take(T0 + 1.0)
    # Everything up to the caller's last frame is final; the agent audio beyond it
    # waits (a clear may still cut it).
    assert len(out) // 4 == 50 * FRAME_SAMPLES
    assert (
        rec.queued_agent_samples == round((2.1 - 0.999 - 0.001) * RATE)
        or rec.queued_agent_samples > 8000
    )
    rec.clear(T0 + 1.0)
    assert rec.queued_agent_samples == 0
    pieces = out + rec.finish(T0 + 1.0)
    _, right = channels(pieces)
    assert np.count_nonzero(right) == round(0.9 * RATE)  # played from 0.1 s to the clear


def test_queued_agent_audio_is_bounded() -> None:
    rec = Recorder(T0, max_queued_s=1.0)
    caller_frames(rec, 5)
    rec.agent(ulaw_ramp(3 * RATE), T0 + 0.1)
    assert rec.queued_agent_samples <= RATE
    assert rec.agent_dropped >= 2 * RATE - FRAME_SAMPLES


def test_a_faster_caller_clock_is_followed() -> None:
    """A caller whose clock runs 10x ours (the emulator at speed 10): placement follows it."""
    rec = Recorder(T0)
    for k in range(150):
        rec.caller(ulaw_ramp(160, k), k * 20, T0 + k * 0.002)
        if k == 99:
            rec.agent(ulaw_ramp(800), T0 + k * 0.002)  # sent as frame 99 (1.98 s) arrived
    _, right = channels(rec.finish(T0 + 149 * 0.002))
    nz = np.flatnonzero(right)
    assert nz[0] == round(1.98 * RATE)  # not at 0.198 s, our clock's idea of it
    assert nz.size == 800 and nz[-1] == nz[0] + 799


def test_wav_header_and_file_are_read_by_the_wave_module(tmp_path: Path) -> None:
    rec = Recorder(T0)
    caller_frames(rec, 50)
    rec.agent(ulaw_ramp(800), T0 + 0.2)
    f = WavFile(tmp_path / "a.wav")
    first = rec.take(T0 + 0.5)
    f.write(first)
    # Readable mid-call: the header is patched after every append.
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert w.getnframes() == len(first) // 4
    rest = rec.finish(T0 + 1.0)
    f.write(rest)
    f.close()
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        assert w.getnframes() == 50 * FRAME_SAMPLES
        assert w.readframes(w.getnframes()) == first + rest


def test_wav_header_bytes() -> None:
    data = b"\x01\x00\x02\x00" * 10
    with wave.open(io.BytesIO(wav_header(len(data)) + data)) as w:
        assert w.getnframes() == 10
        assert w.readframes(10) == data
