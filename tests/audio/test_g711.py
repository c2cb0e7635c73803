"""G.711 mu-law against an independent table-driven reference and hand-worked values.

The reference below is built from the structure of G.711 Table 2a (mu-law), not
from audioop: eight segments of sixteen intervals, interval widths 2, 4, ... 256 in
the 14-bit domain, the first interval [0, 1) and the segment ends 31, 95, 223, 479,
991, 2015, 4063, 8159.  Reconstruction values are the interval midpoints (0 for the
first); 16-bit PCM is value * 4.
"""

from __future__ import annotations

import numpy as np
import pytest

from bridge.audio._audioop import audioop
from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.errors import AudioFormatError

SEGMENT_ENDS = [31, 95, 223, 479, 991, 2015, 4063, 8159]


def _table() -> tuple[np.ndarray, np.ndarray]:
    """Lower decision edges and reconstruction values of the 128 magnitude codes."""
    edges = [0]  # the first interval, [0, 1), is code 0
    start = 1
    for seg, end in enumerate(SEGMENT_ENDS):
        edges.extend(range(start, end, 2 << seg))
        start = end
    lower = np.array(edges)
    upper = np.append(lower[1:], SEGMENT_ENDS[-1])
    recon = (lower + upper) // 2
    recon[0] = 0
    return lower, recon


LOWER, RECON = _table()


def _reference_encode(x: np.ndarray) -> np.ndarray:
    v = x.astype(np.int64) >> 2  # 16-bit -> 14-bit, flooring (the audioop/Sun front end)
    negative = v < 0
    mag = np.minimum(np.abs(v), SEGMENT_ENDS[-1])
    k = np.searchsorted(LOWER, mag, side="right") - 1
    return np.where(negative, k ^ 0x7F, k ^ 0xFF).astype(np.uint8)


def _reference_decode(codes: np.ndarray) -> np.ndarray:
    k = (~codes.astype(np.int64)) & 0x7F
    negative = (codes & 0x80) == 0
    return np.where(negative, -RECON[k], RECON[k]) * 4


def test_reference_table_has_the_g711_shape() -> None:
    # 128 magnitude codes; segment starts at codes 16*s; the top code rebuilds 8031.
    assert LOWER.size == 128 and list(LOWER[:4]) == [0, 1, 3, 5]
    assert [int(LOWER[16 * s]) for s in range(1, 8)] == SEGMENT_ENDS[:7]
    assert RECON[127] == 8031 and RECON[16] == 33


def test_decode_every_code_matches_the_table() -> None:
    codes = np.arange(256, dtype=np.uint8)
    got = np.frombuffer(ulaw_decode(codes.tobytes()), dtype="<i2")
    assert np.array_equal(got, _reference_decode(codes))


def test_encode_every_16_bit_value_matches_the_table() -> None:
    x = np.arange(-32768, 32768, dtype="<i2")
    got = np.frombuffer(ulaw_encode(x.tobytes()), dtype=np.uint8)
    assert np.array_equal(got, _reference_encode(x))


def test_matches_audioop_both_ways() -> None:
    x = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert ulaw_encode(x) == audioop.lin2ulaw(x, 2)
    codes = bytes(range(256))
    assert ulaw_decode(codes) == audioop.ulaw2lin(codes, 2)


@pytest.mark.parametrize(
    ("sample", "code"),
    [
        (0, 0xFF),  # +0
        (3, 0xFF),  # 3 >> 2 = 0: still the zero interval
        (4, 0xFE),  # 14-bit 1 reaches decision value 1
        (1000, 0xCE),  # 250 + 33 = 283 -> segment 3, step 1 -> 0x31, inverted
        (-1000, 0x4E),  # same magnitude, sign bit clear
        (32767, 0x80),  # clips to the largest positive code
        (-32767, 0x00),  # and the largest negative
        (-32768, 0x00),
        (-1, 0x7E),  # floor(-1/4) = -1: one 14-bit step below zero (see g711 docstring)
    ],
)
def test_hand_computed_encodings(sample: int, code: int) -> None:
    assert ulaw_encode(sample.to_bytes(2, "little", signed=True)) == bytes([code])


@pytest.mark.parametrize(
    ("code", "sample"),
    [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xCE, 988), (0xFE, 8), (0x7E, -8)],
)
def test_hand_computed_decodings(code: int, sample: int) -> None:
    assert ulaw_decode(bytes([code])) == sample.to_bytes(2, "little", signed=True)


def test_decode_then_encode_is_lossless_except_negative_zero() -> None:
    codes = bytes(range(256))
    again = ulaw_encode(ulaw_decode(codes))
    expected = bytearray(codes)
    expected[0x7F] = 0xFF  # -0 decodes to 0, which encodes as +0
    assert again == bytes(expected)


def test_encode_rejects_half_a_sample() -> None:
    with pytest.raises(AudioFormatError, match="3 bytes"):
        ulaw_encode(b"\x00\x01\x02")


def test_empty_in_empty_out() -> None:
    assert ulaw_encode(b"") == b"" and ulaw_decode(b"") == b""
