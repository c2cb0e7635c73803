"""Caller audio sources: right length, right content, as 8 kHz mu-law."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.audio.signals import from_pcm16, level_dbfs, tone_pcm16, tone_snr_db
from bridge.emulator.twilio import sources
from bridge.errors import AudioFormatError


def _pcm(ulaw: bytes) -> np.ndarray:
    return from_pcm16(ulaw_decode(ulaw))


def test_silence_and_tone() -> None:
    assert sources.silence(0.5) == b"\xff" * 4000
    t = sources.tone(440.0, 0.5, dbfs=-10.0)
    assert len(t) == 4000
    assert tone_snr_db(_pcm(t), 8000, 440.0) > 30.0  # mu-law's own ~38 dB, minus margin
    beep = _pcm(sources.beep())
    assert tone_snr_db(beep, 8000, 1000.0) > 30.0


def test_speech_like_is_band_limited_bursty_deterministic_and_at_level() -> None:
    a = sources.speech_like(3.0, seed=7, dbfs=-18.0)
    assert len(a) == 24000
    assert a == sources.speech_like(3.0, seed=7, dbfs=-18.0) != sources.speech_like(3.0, seed=8)
    x = _pcm(a)
    assert level_dbfs(x) == pytest.approx(-18.0, abs=1.0)
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / 8000)
    in_band = spectrum[(freqs >= 300) & (freqs <= 3400)].sum() / spectrum.sum()
    assert in_band > 0.95
    # Syllables: 20 ms frame energies swing between near-silence and loud.
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    levels = np.sqrt((frames**2).mean(axis=1))
    assert (levels < 0.1 * levels.max()).mean() > 0.1
    assert (levels > 0.5 * levels.max()).mean() > 0.2


def _write_wav(path: Path, pcm: bytes, rate: int, channels: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


def test_wav_pcm_16k_stereo_is_mixed_and_resampled(tmp_path: Path) -> None:
    mono = np.frombuffer(tone_pcm16(700.0, 1.0, 16000, dbfs=-12.0), dtype="<i2")
    stereo = np.stack([mono, mono], axis=1).astype("<i2").tobytes()
    _write_wav(tmp_path / "s.wav", stereo, 16000, 2)
    out = sources.wav_file(tmp_path / "s.wav")
    assert abs(len(out) - 8000) <= 40  # 1 s at 8 kHz (give or take the filter's edges)
    x = _pcm(out)[400:-400]
    assert tone_snr_db(x, 8000, 700.0) > 30.0


def test_wav_8k_mono_pcm_and_mulaw(tmp_path: Path) -> None:
    pcm = tone_pcm16(300.0, 0.25, 8000)
    _write_wav(tmp_path / "p.wav", pcm, 8000, 1)
    assert sources.wav_file(tmp_path / "p.wav") == ulaw_encode(pcm)
    body = ulaw_encode(pcm)
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    riff += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd chunk: padded
    riff += b"data" + struct.pack("<I", len(body)) + body
    assert sources.wav_to_ulaw(b"RIFF" + struct.pack("<I", len(riff)) + riff) == body


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RIFX....WAVE",
        b"RIFF\x00\x00\x00\x00WAVE",  # no chunks
        b"RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00\x00\x00",  # data before fmt
        b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
        + struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)  # float PCM
        + b"data\x00\x00\x00\x00",
    ],
)
def test_unusable_wav_is_an_audio_format_error(data: bytes) -> None:
    with pytest.raises(AudioFormatError):
        sources.wav_to_ulaw(data)


def test_negative_duration_is_an_audio_format_error() -> None:
    with pytest.raises(AudioFormatError):
        sources.silence(-1.0)
