from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import InputError
from bridge.telephony import dtmf_tones
from bridge.telephony.dtmf_tones import (
    BLOCK,
    FREQS,
    RATE,
    DetectorSettings,
    DtmfDetector,
    detect_pcm,
    dtmf_pcm,
    tone_pcm,
    validate_digits,
)

KEYS = "0123456789*#ABCD"


def _silence(ms: float) -> np.ndarray:
    return np.zeros(round(RATE * ms / 1000), dtype=np.float64)


def _peaks(x: np.ndarray) -> list[float]:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)
    top = np.argsort(spec)[::-1]
    found: list[float] = []
    for i in top:
        if all(abs(freqs[i] - f) > 40 for f in found):
            found.append(float(freqs[i]))
        if len(found) == 2:
            break
    return sorted(found)


@pytest.mark.parametrize("key", list(KEYS))
def test_each_key_is_its_q23_frequency_pair(key: str) -> None:
    x = tone_pcm(key, 500)
    low, high = _peaks(x)
    assert abs(low - FREQS[key][0]) < 4
    assert abs(high - FREQS[key][1]) < 4


def test_timing_100ms_tone_100ms_gap_and_w_pause() -> None:
    pcm = dtmf_pcm("1w2")
    # 1: 800 + 800 samples, w: 4000, 2: 800 + 800
    assert pcm.size == 800 + 800 + 4000 + 800 + 800
    assert pcm.dtype == np.int16
    assert np.all(pcm[800:1600] == 0)
    assert np.all(pcm[1600:5600] == 0)
    assert np.abs(pcm[100:700]).max() > 5000
    assert dtmf_tones.duration_s("1w2") == pytest.approx(pcm.size / RATE)


def test_levels_and_twist_of_the_generated_tones() -> None:
    x = tone_pcm("5", 1000, ramp_ms=0)
    low_only = tone_pcm("5", 1000, high_dbm0=-300, ramp_ms=0)
    high_only = tone_pcm("5", 1000, low_dbm0=-300, ramp_ms=0)
    assert dtmf_tones.level_dbm0(low_only) == pytest.approx(-8.0, abs=0.1)
    assert dtmf_tones.level_dbm0(high_only) == pytest.approx(-6.0, abs=0.1)
    # The sum never clips 16-bit (mu-law's ceiling is 32124).
    assert np.abs(x).max() < 32124


@pytest.mark.parametrize(
    ("digits", "problem"),
    [("", "empty"), ("12x", "invalid"), ("1" * 65, "at most"), ("1 2", "invalid")],
)
def test_invalid_digit_strings_are_refused_with_the_field_named(digits: str, problem: str) -> None:
    with pytest.raises(InputError) as e:
        validate_digits(digits)
    assert e.value.field == "digits"
    assert problem in str(e.value)


def test_non_string_digits_are_refused() -> None:
    with pytest.raises(InputError, match="expected a string"):
        validate_digits(1234)


def test_lower_case_and_capital_w_are_normalised() -> None:
    assert validate_digits("1W2wa#") == "1w2wA#"


def test_detector_recovers_every_key_from_pcm() -> None:
    assert detect_pcm(dtmf_pcm(KEYS)) == KEYS


def test_detector_finds_nothing_in_silence_and_noise() -> None:
    rng = np.random.default_rng(1)
    assert detect_pcm(_silence(2000)) == ""
    assert detect_pcm(rng.normal(0, 3000, RATE * 3)) == ""


def test_one_long_press_is_one_digit_and_a_repeat_needs_a_gap() -> None:
    assert detect_pcm(np.concatenate([tone_pcm("7", 600), _silence(100)])) == "7"
    assert detect_pcm(dtmf_pcm("777")) == "777"


def test_same_key_with_a_one_block_dropout_stays_one_press() -> None:
    x = np.concatenate([tone_pcm("4", 200, ramp_ms=0), _silence(10), tone_pcm("4", 200, ramp_ms=0)])
    assert detect_pcm(x) == "4"


def test_too_short_a_tone_is_not_a_digit() -> None:
    assert detect_pcm(np.concatenate([tone_pcm("3", 25), _silence(200)])) == ""


def test_single_tone_is_not_a_digit() -> None:
    x = np.concatenate([tone_pcm("1", 300, high_dbm0=-300), _silence(100)])
    assert detect_pcm(x) == ""


def test_too_quiet_is_not_a_digit_and_the_threshold_is_a_setting() -> None:
    x = dtmf_pcm("9", low_dbm0=-38, high_dbm0=-36)
    assert detect_pcm(x) == ""
    assert detect_pcm(x, DetectorSettings(min_level_dbm0=-45)) == "9"


def test_twist_limits() -> None:
    # High group 7 dB louder: inside the 8 dB forward-twist limit.
    assert detect_pcm(dtmf_pcm("6", low_dbm0=-13, high_dbm0=-6)) == "6"
    # 10 dB: outside.
    assert detect_pcm(dtmf_pcm("6", low_dbm0=-16, high_dbm0=-6)) == ""
    # Low group 3 dB louder: inside the 4 dB reverse limit; 6 dB: outside.
    assert detect_pcm(dtmf_pcm("6", low_dbm0=-6, high_dbm0=-9)) == "6"
    assert detect_pcm(dtmf_pcm("6", low_dbm0=-6, high_dbm0=-12)) == ""


def _offset_tone(key: str, factor: float, ms: float) -> np.ndarray:
    low, high = FREQS[key]
    t = np.arange(round(RATE * ms / 1000)) / RATE
    a = dtmf_tones.DBM0_PEAK * 10 ** (-7 / 20)
    return a * np.sin(2 * np.pi * low * factor * t) + a * np.sin(2 * np.pi * high * factor * t)


@pytest.mark.parametrize("factor", [0.985, 1.015])
def test_frequency_error_within_q24_tolerance_is_accepted(factor: float) -> None:
    for key in "1D*9":
        assert detect_pcm(np.concatenate([_offset_tone(key, factor, 100), _silence(60)])) == key


def test_a_third_tone_spoils_purity() -> None:
    t = np.arange(RATE // 5) / RATE
    pair = tone_pcm("5", 200, ramp_ms=0)
    # A 1000 Hz tone carrying as much energy as the pair: not a clean dual tone.
    other = np.sqrt(np.mean(pair**2) * 2) * np.sin(2 * np.pi * 1000 * t)
    assert detect_pcm(pair + other) == ""
    assert detect_pcm(pair + other / 4) == "5"


def test_detection_survives_white_noise_at_20_db_snr() -> None:
    rng = np.random.default_rng(7)
    x = dtmf_pcm("1593*#").astype(np.float64)
    signal_rms = np.sqrt(np.mean(x[x != 0] ** 2))
    noisy = x + rng.normal(0, signal_rms / 10, x.size)
    assert detect_pcm(noisy) == "1593*#"


def test_streaming_reports_the_onset_time() -> None:
    det = DtmfDetector()
    x = np.concatenate([_silence(300), dtmf_pcm("42")])
    found = []
    for i in range(0, x.size, 160):  # 20 ms frames, as Twilio sends
        found += det.feed_pcm(x[i : i + 160])
    assert [d.digit for d in found] == ["4", "2"]
    assert found[0].at_s == pytest.approx(0.3, abs=BLOCK / RATE)
    assert found[1].at_s == pytest.approx(0.5, abs=BLOCK / RATE)


@settings(max_examples=25, deadline=None)
@given(
    digits=st.text(alphabet=KEYS, min_size=1, max_size=8),
    lead_ms=st.integers(0, 200),
    frame=st.sampled_from([1, 80, 160, 333, 1000]),
)
def test_any_digit_string_round_trips_in_any_chunking(
    digits: str, lead_ms: int, frame: int
) -> None:
    x = np.concatenate([_silence(lead_ms), dtmf_pcm(digits)])
    det = DtmfDetector()
    out = ""
    for i in range(0, x.size, frame):
        out += "".join(d.digit for d in det.feed_pcm(x[i : i + frame]))
    assert out == digits


def test_goertzel_matches_the_dft_at_exact_frequencies() -> None:
    rng = np.random.default_rng(3)
    blocks = rng.normal(0, 1000, (4, BLOCK))
    freqs = np.array([697.0, 1633.0, 1000.0])
    n = np.arange(BLOCK)
    dft = np.abs(blocks @ np.exp(-2j * np.pi * np.outer(n, freqs) / RATE)) ** 2
    assert np.allclose(dtmf_tones.goertzel_power(blocks, freqs), dft, rtol=1e-9)
