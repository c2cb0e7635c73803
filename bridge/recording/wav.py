"""The 44-byte header of a PCM WAV file (RIFF/WAVE, ``fmt `` then ``data``): pure."""

from __future__ import annotations

import struct

HEADER_BYTES = 44
MAX_DATA_BYTES = 0xFFFFFFFF - 36  # RIFF sizes are 32-bit


def wav_header(data_bytes: int, *, channels: int = 2, rate: int = 8000, bits: int = 16) -> bytes:
    """The header of a file whose ``data`` chunk holds ``data_bytes`` bytes."""
    data_bytes = min(data_bytes, MAX_DATA_BYTES)
    block = channels * bits // 8
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,  # PCM fmt chunk size
        1,  # PCM
        channels,
        rate,
        rate * block,
        block,
        bits,
        b"data",
        data_bytes,
    )
