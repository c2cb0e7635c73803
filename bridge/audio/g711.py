"""G.711 mu-law <-> 16-bit little-endian PCM, bit-exact with the ITU tables.

The work is done by ``audioop`` (C, ~1 ns per sample), whose mu-law codec is the
classic Sun/CCITT reference implementation: a 16-bit sample is taken to the 14-bit
domain G.711 is defined on by an arithmetic shift (``x >> 2``), clipped to the
G.711 range (magnitude 8159), then segment/step coded per G.711 Table 2a; decoding
returns the table's reconstruction value times 4 (so +/-32124 at the extremes).
``0xFF`` and ``0x7F`` are the two zero codes (+0 and -0) and both decode to 0;
0 encodes to ``0xFF``; +/-32767 clip to ``0x80``/``0x00``.

One subtlety, documented rather than hidden: the shift floors, so a tiny negative
sample (-1..-4) has 14-bit magnitude 1 and codes as ``0x7E`` (-8), while the ITU G.191
software tools use one's complement (``~x >> 2``) and give ``0x7F`` (-0).  Both are
front ends onto the same G.711 tables: for negative samples the shift lands one
14-bit unit further from zero, which changes the code only where that unit crosses a
decision value.
"""

from __future__ import annotations

import sys

from bridge.audio._audioop import audioop
from bridge.errors import AudioFormatError

_BIG_ENDIAN = sys.byteorder == "big"


def ulaw_encode(pcm16le: bytes) -> bytes:
    """Encode 16-bit little-endian PCM to mu-law (one byte per sample)."""
    if len(pcm16le) % 2:
        raise AudioFormatError(
            f"16-bit PCM must be a whole number of 2-byte samples; got {len(pcm16le)} bytes"
        )
    if _BIG_ENDIAN:  # audioop works in native byte order
        pcm16le = audioop.byteswap(pcm16le, 2)
    out: bytes = audioop.lin2ulaw(pcm16le, 2)
    return out


def ulaw_decode(ulaw: bytes) -> bytes:
    """Decode mu-law bytes to 16-bit little-endian PCM (two bytes per sample)."""
    out: bytes = audioop.ulaw2lin(ulaw, 2)
    if _BIG_ENDIAN:
        out = audioop.byteswap(out, 2)
    return out
