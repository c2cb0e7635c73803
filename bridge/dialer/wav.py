"""What the caller heard, as a WAV file: 8 kHz, 16-bit PCM, on the call's timeline (pure).

Channel 1 (mono, or the right channel in stereo) is the agent's audio as the caller's
phone played it: placed where Twilio's playout put it, cut where a ``clear`` or the
hang-up cut it, silence in between.  In stereo the left channel is what the caller said
(the frames it sent, each at its place in the stream), the layout the bridge's own
recordings use: caller left, agent right.  Time 0 is the moment the caller dialled.
"""

from __future__ import annotations

import struct

import numpy as np

from bridge.audio.g711 import ulaw_decode
from bridge.emulator.twilio.playout import BYTES_PER_SECOND, SILENCE
from bridge.emulator.twilio.records import CallResult

RATE = BYTES_PER_SECOND  # mu-law: one byte per sample


def heard_ulaw(result: CallResult, until: float) -> bytes:
    """Every stream's heard audio on one timeline from call time 0 to ``until``."""
    n = max(0, round(until * RATE))
    line = bytearray([SILENCE]) * n
    for stream in result.streams:
        for seg in stream.heard:
            at = round(seg.start * RATE)
            data = seg.data[: max(0, n - at)]
            line[at : at + len(data)] = data
    return bytes(line)


def said_ulaw(result: CallResult, frames: list[bytes], until: float) -> bytes:
    """The caller's frames (``frames``, in sending order) placed on the same timeline."""
    n = max(0, round(until * RATE))
    line = bytearray([SILENCE]) * n
    i = 0
    for stream in result.streams:
        start = stream.started_at or 0.0
        for sent in stream.frames:
            if i >= len(frames):
                break
            at = round(start * RATE) + sent.offset
            data = frames[i][: max(0, n - at)]
            line[at : at + len(data)] = data
            i += 1
    return bytes(line)


def wav_bytes(channels: list[bytes]) -> bytes:
    """A RIFF/WAVE file of equal-length mu-law ``channels``, decoded to 16-bit PCM."""
    pcm = [np.frombuffer(ulaw_decode(c), dtype="<i2") for c in channels]
    frames = np.stack(pcm, axis=1).reshape(-1) if len(pcm) > 1 else pcm[0]
    data = frames.astype("<i2").tobytes()
    n_ch = len(channels)
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    fmt = struct.pack("<HHIIHH", 1, n_ch, RATE, RATE * 2 * n_ch, 2 * n_ch, 16)
    return (
        header
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def call_wav(result: CallResult, frames: list[bytes] | None, until: float) -> bytes:
    """Mono (heard) or, with the caller's ``frames``, stereo (said left, heard right)."""
    heard = heard_ulaw(result, until)
    if frames is None:
        return wav_bytes([heard])
    return wav_bytes([said_ulaw(result, frames, until), heard])
