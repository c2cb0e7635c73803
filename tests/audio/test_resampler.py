"""Streaming resampler: the quality bars measured on real tones, streaming behaviour.

Levels are measured on the output after the kernel has filled (first 10 ms dropped)
and before the end, on audio fed in 20 ms frames as the bridge does.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.audio._audioop import audioop
from bridge.audio.filters import polyphase
from bridge.audio.resampler import StreamingResampler
from bridge.audio.signals import (
    db,
    fit_tone,
    from_pcm16,
    impulse_delay_ms,
    rms,
    to_pcm16,
    tone,
    tone_pcm16,
)
from bridge.errors import AudioFormatError

AGENT_RATES = [16000, 22050, 24000, 44100, 48000]
PAIRS = [(r, 8000) for r in AGENT_RATES] + [(8000, r) for r in AGENT_RATES]


def stream(rs: StreamingResampler, pcm: bytes, chunk_bytes: int, flush: bool = False) -> bytes:
    out = [rs.process(pcm[i : i + chunk_bytes]) for i in range(0, len(pcm), chunk_bytes)]
    if flush:
        out.append(rs.flush())
    return b"".join(out)


def in_frames(in_rate: int, out_rate: int, pcm: bytes) -> np.ndarray:
    """Resample ``pcm`` in 20 ms frames; return the settled part of the output."""
    y = from_pcm16(stream(StreamingResampler(in_rate, out_rate), pcm, 2 * (in_rate // 50)))
    skip = out_rate // 100  # 10 ms: the 4.4 ms kernel has filled
    return y[skip:-skip]


def noise(rate: int, seconds: float, seed: int = 1) -> bytes:
    """Loud speech-band-ish noise (with some energy up to Nyquist) as PCM bytes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(round(seconds * rate)) * 6000.0
    x += np.cumsum(rng.standard_normal(x.size)) * 30.0  # a low-frequency wander
    return to_pcm16(np.clip(x, -32000, 32000))


def rejection_db(x: bytes, y: np.ndarray) -> float:
    """Input RMS over everything that came out (alias, leakage and rounding alike).

    An all-zero output means every pre-rounding sample was under half an LSB, so its
    RMS is floored at 0.5: the result is then a lower bound (~92 dB at -1 dBFS).
    """
    return db(rms(from_pcm16(x)) / max(rms(y), 0.5))


@pytest.mark.parametrize("in_rate", AGENT_RATES)
def test_downsampling_rejects_everything_from_4500_hz_to_nyquist(in_rate: int) -> None:
    worst = np.inf
    for f in [*np.arange(4500.0, in_rate / 2, 250.0), in_rate / 2 - 50.0]:
        x = tone_pcm16(f, 0.1, in_rate, dbfs=-1.0)
        worst = min(worst, rejection_db(x, in_frames(in_rate, 8000, x)))
    assert worst >= 80.0, f"worst alias only {worst:.1f} dB down"


def test_naive_ratecv_fails_the_same_measurement() -> None:
    # The measurement can fail: audioop.ratecv lets a 5 kHz tone alias to 3 kHz.
    x = tone_pcm16(5000.0, 0.1, 16000, dbfs=-1.0)
    y, _ = audioop.ratecv(x, 2, 1, 16000, 8000, None)
    assert rejection_db(x, from_pcm16(y)[80:-80]) < 20.0
    assert fit_tone(from_pcm16(y)[80:-80], 8000, 3000.0).snr_db > 0  # it is mostly the alias


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
@pytest.mark.parametrize("f", [300.0, 1000.0, 2000.0, 3000.0, 3400.0])
def test_passband_within_half_a_db(in_rate: int, out_rate: int, f: float) -> None:
    x = tone(f, 0.1, in_rate, dbfs=-6.0)
    fit_in = fit_tone(x, in_rate, f)
    fit_out = fit_tone(in_frames(in_rate, out_rate, to_pcm16(x)), out_rate, f)
    gain = db(fit_out.amplitude / fit_in.amplitude)
    assert -0.5 <= gain <= 0.5
    assert fit_out.snr_db > 60.0  # and it came out clean


@pytest.mark.parametrize("out_rate", AGENT_RATES)
def test_upsampling_images_of_3khz_are_80_db_down(out_rate: int) -> None:
    y = in_frames(8000, out_rate, tone_pcm16(3000.0, 0.2, 8000, dbfs=-1.0))
    fit = fit_tone(y, out_rate, 3000.0)
    # Everything that is not the 3 kHz tone: images at 5, 11, 13 kHz..., plus rounding.
    assert fit.snr_db >= 80.0, f"images only {fit.snr_db:.1f} dB down"
    assert fit.dbfs == pytest.approx(-1.0, abs=0.5)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_streaming_in_20ms_frames_equals_one_shot(in_rate: int, out_rate: int) -> None:
    pcm = noise(in_rate, 0.5)
    one_shot = StreamingResampler(in_rate, out_rate)
    whole = from_pcm16(one_shot.process(pcm) + one_shot.flush())
    framed = from_pcm16(
        stream(StreamingResampler(in_rate, out_rate), pcm, 2 * (in_rate // 50), True)
    )
    assert framed.size == whole.size
    assert np.max(np.abs(framed - whole)) <= 1.0
    # 0.5 s in -> 0.5 s out, plus the (taps - 1)-input tail that flush releases.
    taps = polyphase(in_rate, out_rate).taps
    n_in = len(pcm) // 2 + taps - 1
    assert whole.size == -(-n_in * out_rate // in_rate)


@settings(max_examples=30, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=12),
)
def test_any_chunking_equals_one_shot(pair: tuple[int, int], cuts: list[int]) -> None:
    in_rate, out_rate = pair
    pcm = noise(in_rate, 0.1, seed=len(cuts))
    whole = StreamingResampler(in_rate, out_rate)
    expected = from_pcm16(whole.process(pcm) + whole.flush())
    rs = StreamingResampler(in_rate, out_rate)
    # Byte offsets, so chunks may be empty, odd-sized, or split a sample in two.
    bounds = sorted({0, len(pcm), *(c % (len(pcm) + 1) for c in cuts)})
    got = b"".join(rs.process(pcm[a:b]) for a, b in itertools.pairwise(bounds))
    got += rs.process(b"") + rs.flush()
    y = from_pcm16(got)
    assert y.size == expected.size
    assert np.max(np.abs(y - expected), initial=0.0) <= 1.0


def test_a_dangling_byte_waits_for_its_partner() -> None:
    rs = StreamingResampler(16000, 8000)
    ref = StreamingResampler(16000, 8000)
    pcm = noise(16000, 0.02)
    a = rs.process(pcm[:321])  # 160.5 samples
    b = rs.process(pcm[321:])
    assert len(a) % 2 == 0 and len(b) % 2 == 0
    assert a + b == ref.process(pcm)


def test_empty_chunks_are_harmless() -> None:
    rs = StreamingResampler(8000, 44100)
    assert rs.process(b"") == b""
    assert rs.process(b"\x01") == b""  # half a sample: nothing yet
    assert rs.flush() == b""  # nothing complete was fed; the half sample is dropped
    assert len(rs.process(b"\x00\x00" * 160)) == 2 * 882


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_algorithmic_delay_is_under_5_ms(in_rate: int, out_rate: int) -> None:
    rs = StreamingResampler(in_rate, out_rate)
    measured = impulse_delay_ms(rs.process, in_rate, out_rate, chunk_ms=20.0)
    assert measured <= 5.0
    assert measured == pytest.approx(rs.delay_ms, abs=1000.0 / min(in_rate, out_rate))


def test_reset_forgets_everything() -> None:
    first, second = noise(48000, 0.05, seed=2), noise(48000, 0.05, seed=3)
    rs = StreamingResampler(48000, 8000)
    rs.process(first[:-1])  # leave history, phase and a dangling byte behind
    rs.reset()
    fresh = StreamingResampler(48000, 8000)
    assert rs.process(second) == fresh.process(second)
    assert rs.flush() == fresh.flush()


def test_reset_restores_phase_of_rational_ratio() -> None:
    rs = StreamingResampler(44100, 8000)
    rs.process(b"\x00\x00" * 1000)  # mid-period
    rs.reset()
    pcm = noise(44100, 0.04)
    assert rs.process(pcm) == StreamingResampler(44100, 8000).process(pcm)


def test_flush_releases_the_tail_and_the_stream_continues() -> None:
    rs = StreamingResampler(8000, 16000)
    x = np.zeros(160)
    x[-1] = 20000.0  # an impulse in the very last input sample
    body = from_pcm16(rs.process(to_pcm16(x)))
    tail = from_pcm16(rs.flush())
    assert np.max(np.abs(body)) < 20000 * 0.2  # only its leading edge so far
    assert np.max(np.abs(tail)) > 20000 * 0.9  # the peak came out in the tail
    assert tail.size == 2 * (polyphase(8000, 16000).taps - 1)
    assert rs.flush() == b""  # nothing new since
    # Continuing after a flush is the same as having fed the silence flush assumed.
    more = noise(8000, 0.02)
    ref = StreamingResampler(8000, 16000)
    ref.process(to_pcm16(x) + b"\x00\x00" * (polyphase(8000, 16000).taps - 1))
    assert rs.process(more) == ref.process(more)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(16000, 8000), (44100, 8000), (8000, 22050)])
def test_long_chunks_equal_20ms_framing(in_rate: int, out_rate: int) -> None:
    # Chunks past ~80 ms are cut into pieces internally; the output must not notice,
    # whatever the phase the stream is in when the long chunk arrives.
    pcm = noise(in_rate, 1.5)
    rs = StreamingResampler(in_rate, out_rate)
    big = rs.process(pcm[:334]) + rs.process(pcm[334:]) + rs.flush()
    expected = stream(StreamingResampler(in_rate, out_rate), pcm, 2 * (in_rate // 50), True)
    assert len(big) == len(expected)
    assert np.max(np.abs(from_pcm16(big) - from_pcm16(expected))) <= 1.0


@pytest.mark.parametrize(("in_rate", "out_rate"), [(11025, 16000), (44100, 48000), (100, 8000)])
def test_other_rate_pairs_work_too(in_rate: int, out_rate: int) -> None:
    pcm = noise(in_rate, 0.3)
    one = StreamingResampler(in_rate, out_rate)
    whole = from_pcm16(one.process(pcm) + one.flush())
    framed = from_pcm16(stream(StreamingResampler(in_rate, out_rate), pcm, 2 * 37, True))
    assert whole.size == framed.size
    assert np.max(np.abs(whole - framed)) <= 1.0
    n_in = len(pcm) // 2 + polyphase(in_rate, out_rate).taps - 1
    assert whole.size == -(-n_in * out_rate // in_rate)


def direct(pcm: bytes, in_rate: int, out_rate: int) -> np.ndarray:
    """Textbook evaluation, one output at a time in float64, from the polyphase formula."""
    pp = polyphase(in_rate, out_rate)
    x = np.concatenate([np.zeros(pp.taps - 1), from_pcm16(pcm)])  # silence before
    n_out = -(-(x.size - pp.taps + 1) * pp.up // pp.down)
    y = np.empty(n_out)
    for n in range(n_out):
        base, phase = divmod(n * pp.down, pp.up)
        newest_first = x[base : base + pp.taps][::-1]
        y[n] = pp.coeffs[phase] @ newest_first
    return np.clip(np.rint(y), -32768, 32767)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
@pytest.mark.parametrize("chunk_ms", [20.0, 1.3])  # 1.3 ms: chunks start at every phase
def test_matches_direct_evaluation(in_rate: int, out_rate: int, chunk_ms: float) -> None:
    pcm = noise(in_rate, 0.05, seed=4)
    chunk = 2 * round(in_rate * chunk_ms / 1000)
    got = from_pcm16(stream(StreamingResampler(in_rate, out_rate), pcm, chunk))
    expected = direct(pcm, in_rate, out_rate)
    assert got.size == expected.size
    assert np.max(np.abs(got - expected)) <= 1.0


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 48000), (16000, 8000), (8000, 22050)])
def test_full_scale_input_saturates_instead_of_wrapping(in_rate: int, out_rate: int) -> None:
    # A full-scale square wave overshoots after filtering; int16 output must clip.
    x = np.where(np.arange(in_rate // 10) % 8 < 4, 32767.0, -32768.0)
    y = from_pcm16(StreamingResampler(in_rate, out_rate).process(to_pcm16(x)))
    expected = direct(to_pcm16(x), in_rate, out_rate)
    assert y.max() == 32767 and y.min() == -32768  # it did hit the rails
    assert np.max(np.abs(y - expected)) <= 1.0


def test_saturation_covers_loud_samples_still_in_history() -> None:
    # Worst case for one output: every input in its window carries the sign of its
    # coefficient at full scale (|y| ~ 1.9 x full scale), except the newest, which is
    # silent and arrives alone in a quiet chunk -- that call must still saturate.
    pp = polyphase(16000, 8000)
    n0 = 100
    x = np.zeros(2 * n0 + 1)
    for j in range(1, pp.taps):
        x[2 * n0 - j] = 32767.0 * np.sign(pp.coeffs[0, j])
    pcm = to_pcm16(x)
    rs = StreamingResampler(16000, 8000)
    loud = from_pcm16(rs.process(pcm[: 4 * n0]))
    quiet = from_pcm16(rs.process(pcm[4 * n0 :]))
    assert loud.size == n0 and quiet.size == 1
    assert quiet[0] == 32767.0
    assert np.max(np.abs(np.concatenate([loud, quiet]) - direct(pcm, 16000, 8000))) <= 1.0


def test_equal_rates_are_an_identity() -> None:
    rs = StreamingResampler(8000, 8000)
    assert rs.identity and rs.delay_ms == 0.0
    pcm = noise(8000, 0.02)
    assert rs.process(pcm[:101]) + rs.process(pcm[101:]) == pcm
    assert rs.process(b"\x05") == b"" and rs.flush() == b""


@pytest.mark.parametrize(("in_rate", "out_rate"), [(0, 8000), (8000, 44101), (16000, -8000)])
def test_bad_rates_are_refused(in_rate: int, out_rate: int) -> None:
    with pytest.raises(AudioFormatError):
        StreamingResampler(in_rate, out_rate)


def test_streams_are_independent() -> None:
    a, b = StreamingResampler(16000, 8000), StreamingResampler(16000, 8000)
    x, y = noise(16000, 0.02, seed=5), noise(16000, 0.02, seed=6)
    a.process(x)
    assert b.process(y) == StreamingResampler(16000, 8000).process(y)
