"""The kernel design itself: response on dense grids, delay, table invariants."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.audio.filters import (
    PASSBAND_EDGE,
    STOPBAND_EDGE,
    check_rates,
    frequency_response,
    polyphase,
)
from bridge.errors import AudioFormatError

AGENT_RATES = [16000, 22050, 24000, 44100, 48000]
PAIRS = [(r, 8000) for r in AGENT_RATES] + [(8000, r) for r in AGENT_RATES]


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_design_response_meets_the_bars_on_a_dense_grid(in_rate: int, out_rate: int) -> None:
    nyquist = max(in_rate, out_rate) / 2
    passband = 20 * np.log10(frequency_response(in_rate, out_rate, np.linspace(0, 3400, 341)))
    stopband = 20 * np.log10(frequency_response(in_rate, out_rate, np.arange(4500, nyquist, 10.0)))
    assert passband.min() >= -0.5 and passband.max() <= 0.5
    # Sidelobes are ~230 Hz wide (1 / 4.4 ms), so a 10 Hz grid finds their peaks.
    assert stopband.max() <= -90.0  # the tone tests allow 80; the design keeps 10 dB spare


@pytest.mark.parametrize(("in_rate", "out_rate"), [(11025, 16000), (24000, 16000)])
def test_other_pairs_scale_the_spec_to_the_lower_rate(in_rate: int, out_rate: int) -> None:
    fmin, nyquist = min(in_rate, out_rate), max(in_rate, out_rate) / 2
    edge, stop = PASSBAND_EDGE * fmin, STOPBAND_EDGE * fmin
    passband = 20 * np.log10(frequency_response(in_rate, out_rate, np.linspace(0, edge, 200)))
    stopband = 20 * np.log10(frequency_response(in_rate, out_rate, np.arange(stop, nyquist, 10.0)))
    assert passband.min() >= -0.5 and stopband.max() <= -90.0
    assert polyphase(in_rate, out_rate).delay_s == pytest.approx(2.2e-3 * 8000 / fmin)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_tables_are_normalised_and_delay_is_the_same_everywhere(
    in_rate: int, out_rate: int
) -> None:
    pp = polyphase(in_rate, out_rate)
    assert pp.coeffs.shape == (pp.up, pp.taps)
    assert np.allclose(pp.coeffs.sum(axis=1), 1.0, atol=1e-12)
    assert pp.delay_s == pytest.approx(2.2e-3)
    assert (pp.up * in_rate) == (pp.down * out_rate)
    assert not pp.coeffs.flags.writeable


def test_rational_ratios_reduce() -> None:
    assert (polyphase(44100, 8000).up, polyphase(44100, 8000).down) == (80, 441)
    assert (polyphase(8000, 22050).up, polyphase(8000, 22050).down) == (441, 160)
    assert (polyphase(48000, 8000).up, polyphase(48000, 8000).down) == (1, 6)


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "match"),
    [
        (0, 8000, "input sample rate 0"),
        (8000, -1, "output sample rate -1"),
        (8000.0, 16000, "input sample rate 8000.0"),
        (True, 16000, "input sample rate True"),
        (44101, 8000, "phases"),
    ],
)
def test_unusable_rates_are_errors(in_rate: object, out_rate: object, match: str) -> None:
    with pytest.raises(AudioFormatError, match=match):
        check_rates(in_rate, out_rate)  # type: ignore[arg-type]
