from __future__ import annotations

import base64

import numpy as np
import pytest

from bridge.audio.filters import polyphase
from bridge.audio.formats import (
    FORMATS,
    PCM_8000,
    PCM_16000,
    PCM_44100,
    ULAW_8000,
    AudioFormat,
    parse_format,
)
from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.audio.signals import from_pcm16, tone_pcm16, tone_snr_db
from bridge.audio.transcoder import Transcoder, agent_to_caller, caller_to_agent
from bridge.errors import AudioFormatError

PCM_FORMATS = [parse_format(n) for n in FORMATS if n.startswith("pcm_")]


def twilio_tone(freq: float = 1000.0, seconds: float = 1.0, dbfs: float = -10.0) -> bytes:
    """What Twilio would send for a tone: mu-law at 8 kHz."""
    return ulaw_encode(tone_pcm16(freq, seconds, 8000, dbfs))


def frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_ulaw_agent_is_a_zero_copy_passthrough_both_ways() -> None:
    for t in (caller_to_agent(ULAW_8000), agent_to_caller(ULAW_8000)):
        assert t.passthrough and t.delay_ms == 0.0
        payload = base64.b64encode(twilio_tone(seconds=0.02)).decode()
        assert t.process_b64(payload) is payload
        raw = twilio_tone(seconds=0.02)
        assert t.process(raw) is raw
        # Passthrough does not even look at the payload.
        assert t.process_b64("not base64 at all!") == "not base64 at all!"
        assert t.flush() == b""
        t.reset()


@pytest.mark.parametrize("fmt", PCM_FORMATS, ids=str)
def test_frame_sizes_follow_the_agent_rate(fmt: AudioFormat) -> None:
    up, down = caller_to_agent(fmt), agent_to_caller(fmt)
    assert not up.passthrough and not down.passthrough
    agent_frame = up.process(twilio_tone(seconds=0.02))
    assert len(agent_frame) == fmt.bytes_per_20ms
    assert len(down.process(agent_frame)) == ULAW_8000.bytes_per_20ms


@pytest.mark.parametrize("name", FORMATS)
def test_round_trip_of_a_1khz_tone_keeps_35_db_snr(name: str) -> None:
    fmt = parse_format(name)
    up, down = caller_to_agent(fmt), agent_to_caller(fmt)
    back = b"".join(down.process(up.process(f)) for f in frames(twilio_tone(), 160))
    y = from_pcm16(ulaw_decode(back))[80:]  # skip the 2 x 2.2 ms start-up
    assert tone_snr_db(y, 8000, 1000.0) >= 35.0


def test_round_trip_snr_is_measured_not_assumed() -> None:
    # The same measurement on a path that drops every other frame fails.
    up, down = caller_to_agent(PCM_16000), agent_to_caller(PCM_16000)
    out = [down.process(up.process(f)) for f in frames(twilio_tone(), 160)]
    broken = b"".join(f if i % 2 else b"\xff" * len(f) for i, f in enumerate(out))
    assert tone_snr_db(from_pcm16(ulaw_decode(broken))[80:], 8000, 1000.0) < 10.0


def test_pcm_8000_is_plain_g711_with_no_resampling() -> None:
    ulaw = twilio_tone(seconds=0.1)
    assert caller_to_agent(PCM_8000).process(ulaw) == ulaw_decode(ulaw)
    pcm = tone_pcm16(440.0, 0.1, 8000)
    assert agent_to_caller(PCM_8000).process(pcm) == ulaw_encode(pcm)
    assert caller_to_agent(PCM_8000).delay_ms == 0.0


def test_b64_wire_form_matches_raw_processing() -> None:
    raw_path, b64_path = caller_to_agent(PCM_16000), caller_to_agent(PCM_16000)
    for frame in frames(twilio_tone(seconds=0.1), 160):
        expected = raw_path.process(frame)
        got = b64_path.process_b64(base64.b64encode(frame).decode())
        assert base64.b64decode(got) == expected


@pytest.mark.parametrize("bad", ["QUJ", "QU!D", "QUJD\n", "ÄÖÜ="])
def test_bad_base64_is_an_audio_format_error(bad: str) -> None:
    with pytest.raises(AudioFormatError, match="not valid base64"):
        caller_to_agent(PCM_16000).process_b64(bad)


def test_odd_pcm_payloads_carry_the_odd_byte() -> None:
    pcm = tone_pcm16(700.0, 0.04, 16000)  # 1280 bytes = 40 ms
    t = agent_to_caller(PCM_16000)
    out = t.process(pcm[:641]) + t.process(pcm[641:1279]) + t.process(pcm[1279:])
    assert out == agent_to_caller(PCM_16000).process(pcm)
    assert len(out) == 320
    assert agent_to_caller(PCM_8000).process(b"\x01\x02\x03") == ulaw_encode(b"\x01\x02")


def test_reset_drops_buffered_audio() -> None:
    t = agent_to_caller(PCM_44100)
    t.process(tone_pcm16(300.0, 0.05, 44100, dbfs=-3.0)[:-1])
    t.reset()
    assert t.flush() == b""  # nothing of the old utterance is left
    pcm = tone_pcm16(500.0, 0.04, 44100)
    assert t.process(pcm) == agent_to_caller(PCM_44100).process(pcm)


def test_flush_returns_the_tail_encoded() -> None:
    t = agent_to_caller(PCM_16000)
    body = t.process(tone_pcm16(1000.0, 0.02, 16000))
    tail = t.flush()
    assert len(body) == 160
    assert len(tail) == (polyphase(16000, 8000).taps - 1) // 2  # taps - 1 inputs, halved
    assert np.abs(from_pcm16(ulaw_decode(tail))).max() > 1000  # the ringing tone tail
    up = caller_to_agent(PCM_16000)
    up.process(twilio_tone(seconds=0.02))
    assert len(up.flush()) % 2 == 0


def test_delay_is_reported_per_direction() -> None:
    assert caller_to_agent(PCM_16000).delay_ms == pytest.approx(2.2)
    assert agent_to_caller(PCM_44100).delay_ms == pytest.approx(2.2)


def test_pcm_to_pcm_is_not_a_transcoder_we_make() -> None:
    with pytest.raises(AudioFormatError, match="ulaw_8000"):
        Transcoder(PCM_16000, PCM_8000)


@pytest.mark.parametrize("fmt", PCM_FORMATS, ids=str)
def test_silence_stays_silence(fmt: AudioFormat) -> None:
    assert caller_to_agent(fmt).process(b"\xff" * 160) == bytes(fmt.bytes_per_20ms)
    assert agent_to_caller(fmt).process(bytes(fmt.bytes_per_20ms)) == b"\xff" * 160
