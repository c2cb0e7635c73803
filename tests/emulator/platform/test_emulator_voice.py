"""The emulator's synthetic voice and its format conversion."""

from __future__ import annotations

import pytest

from bridge.audio.formats import parse_format
from bridge.audio.g711 import ulaw_decode
from bridge.audio.resampler import StreamingResampler
from bridge.audio.signals import from_pcm16, level_dbfs, tone_pcm16, tone_snr_db
from bridge.emulator.platform.vad import EnergyVad, SpeechEnded
from bridge.emulator.platform.voice import FormatConverter, synth_utterance, text_duration_ms


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 44100, 48000])
def test_utterance_length_level_and_determinism(rate: int) -> None:
    pcm = synth_utterance(700, rate, seed="hello")
    assert len(pcm) == rate * 700 // 1000 * 2
    level = level_dbfs(from_pcm16(pcm))
    assert -35 < level < -15
    assert pcm == synth_utterance(700, rate, seed="hello")
    assert pcm != synth_utterance(700, rate, seed="other")


def test_the_vad_hears_the_synthetic_voice_as_speech() -> None:
    pcm = synth_utterance(1000, 16000, seed="x") + bytes(16000)
    ends = [
        e for e in EnergyVad(16000, end_silence_ms=300).process(pcm) if isinstance(e, SpeechEnded)
    ]
    assert ends and sum(e.duration_ms(16000) for e in ends) >= 600


def test_text_duration_is_clamped() -> None:
    assert text_duration_ms("") == 400
    assert text_duration_ms("x" * 20) == 1100
    assert text_duration_ms("x" * 1000) == 4000


def test_converter_resamples_and_encodes() -> None:
    conv = FormatConverter(16000, parse_format("ulaw_8000"))
    ulaw = conv.convert_all(tone_pcm16(440, 0.5, 16000, dbfs=-10))
    assert 4000 <= len(ulaw) <= 4000 + 40  # 0.5 s at 8 kHz plus the filter tail
    pcm = from_pcm16(ulaw_decode(ulaw))[400:3600]
    assert tone_snr_db(pcm, 8000, 440) > 30


def test_converter_streams_and_identity_passes_through() -> None:
    same = FormatConverter(16000, parse_format("pcm_16000"))
    data = tone_pcm16(440, 0.1, 16000)
    assert same.process(data) == data
    up = FormatConverter(8000, parse_format("pcm_48000"))
    out = b"".join(up.process(tone_pcm16(440, 0.02, 8000)) for _ in range(10))
    assert abs(len(out) - 48000 * 2 // 5) <= 2 * 48  # 200 ms, less the ~1 ms filter delay


def test_identity_carries_an_odd_byte_like_the_resampler() -> None:
    same = FormatConverter(16000, parse_format("pcm_16000"))
    reference = StreamingResampler(16000, 16000)
    chunks = [b"\x01\x02", b"", b"\x03", b"\x04\x05\x06", b"\x07\x08", b"\x09", b"\x0a"]
    got = [same.process(c) for c in chunks]
    assert got == [reference.process(c) for c in chunks]
    assert b"".join(got) == bytes(range(1, 11))
