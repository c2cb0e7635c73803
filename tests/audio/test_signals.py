from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from bridge.audio.signals import (
    FULL_SCALE,
    fit_tone,
    from_pcm16,
    impulse_delay_ms,
    level_dbfs,
    to_pcm16,
    tone,
    tone_pcm16,
    tone_snr_db,
)


def test_tone_level_and_length() -> None:
    x = tone(1000, 0.5, 16000, dbfs=-10.0)
    assert x.size == 8000
    assert level_dbfs(x) == pytest.approx(-10.0, abs=0.01)
    assert np.max(np.abs(x)) == pytest.approx(FULL_SCALE * 10 ** (-0.5), rel=1e-3)
    assert level_dbfs(np.zeros(10)) == -math.inf


def test_pcm16_round_trip_rounds_and_saturates() -> None:
    pcm = to_pcm16([0.4, 0.6, -0.6, 40000.0, -40000.0, 32767.0])
    assert list(from_pcm16(pcm)) == [0.0, 1.0, -1.0, 32767.0, -32768.0, 32767.0]
    assert from_pcm16(pcm + b"\x01").size == 6  # a dangling byte is not a sample
    assert len(tone_pcm16(440, 0.02, 8000)) == 320


def test_fit_recovers_amplitude_phase_and_dc_whatever_the_delay() -> None:
    rate = 8000
    x = 5000.0 * np.sin(2 * np.pi * 700 * np.arange(4000) / rate + 1.0) + 12.0
    fit = fit_tone(x, rate, 700)
    assert fit.amplitude == pytest.approx(5000.0, rel=1e-9)
    assert fit.phase == pytest.approx(1.0, abs=1e-9)
    assert fit.dc == pytest.approx(12.0, abs=1e-6)
    assert fit.residual_rms < 1e-6 and fit.snr_db > 150


def test_snr_matches_the_noise_that_was_added() -> None:
    rng = np.random.default_rng(7)
    clean = tone(1000, 2.0, 8000, dbfs=-10.0)
    noise_rms = (FULL_SCALE * 10 ** (-10 / 20) / math.sqrt(2)) / 10 ** (30 / 20)
    noisy = clean + rng.normal(0.0, noise_rms, clean.size)
    assert tone_snr_db(noisy, 8000, 1000) == pytest.approx(30.0, abs=0.2)


def test_fit_needs_samples() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        fit_tone([1.0, 2.0], 8000, 1000)


def _delay_line(samples: int) -> Callable[[bytes], bytes]:
    pending = bytearray(b"\x00\x00" * samples)

    def process(pcm: bytes) -> bytes:
        pending.extend(pcm)
        out = bytes(pending[: len(pcm)])
        del pending[: len(pcm)]
        return out

    return process


def _one_chunk_late() -> Callable[[bytes], bytes]:
    last = [b""]

    def process(pcm: bytes) -> bytes:
        out, last[0] = last[0], pcm
        return out

    return process


def test_impulse_delay_of_known_converters() -> None:
    assert impulse_delay_ms(lambda pcm: pcm, 8000, 8000) == pytest.approx(0.0, abs=1e-9)
    # 40 samples at 8 kHz: the peak itself moves 5 ms.
    assert impulse_delay_ms(_delay_line(40), 8000, 8000) == pytest.approx(5.0, abs=1e-9)
    # Same peak position, but each chunk comes back one call late: 20 ms held back.
    assert impulse_delay_ms(_one_chunk_late(), 8000, 8000) == pytest.approx(20.0, abs=1e-9)
    assert impulse_delay_ms(lambda pcm: b"", 8000, 8000) == math.inf
