"""A bridge that records, and how to read and check what it recorded."""

from __future__ import annotations

import contextlib
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.audio.g711 import ulaw_decode
from bridge.emulator.twilio.records import CallResult
from tests.fixtures.bridge import BridgeUnderTest, bridge_config, eventually, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

FRAME = 160  # samples in one 20 ms media frame


@contextlib.asynccontextmanager
async def recording_bridge(
    platform: PlatformEmulator,
    directory: Path,
    *,
    twilio: TwilioEmulator | None = None,
    telephony: dict[str, Any] | None = None,
    calls: dict[str, Any] | None = None,
    recording: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    **parts: Any,
) -> AsyncIterator[BridgeUnderTest]:
    cfg = bridge_config(
        platform,
        twilio=twilio,
        **(env or {}),
        sections={
            "recording": {"enabled": True, "dir": str(directory), **(recording or {})},
            "telephony": telephony,
            "calls": calls,
        },
    )
    async with running_bridge(platform, cfg, twilio=twilio, **parts) as bridge:
        yield bridge


@dataclass
class Wav:
    left: np.ndarray  # the caller
    right: np.ndarray  # the agent, as heard
    frames: int


def read_wav(path: Path) -> Wav:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        n = w.getnframes()
        x = np.frombuffer(w.readframes(n), dtype="<i2")
    assert len(x) == 2 * n  # the header states exactly what the file holds
    return Wav(x[0::2], x[1::2], n)


async def finalised(bridge: BridgeUnderTest, call_sid: str, before: float = 0.0) -> Wav:
    """The call's recording once the bridge has finalised it."""
    await eventually(lambda: bridge.metric("bridge_recordings_total") > before)
    path = bridge.config.recording.directory(bridge.config.store.db) / f"{call_sid}.wav"
    return read_wav(path)


def pcm(ulaw: bytes) -> np.ndarray:
    return np.frombuffer(ulaw_decode(ulaw), dtype="<i2")


def check_heard(res: CallResult, rec: Wav) -> int:
    """The agent channel is exactly what the synthetic caller heard: every heard segment
    where it played, within one frame, and nothing else.  Returns the worst offset."""
    stream = res.stream
    assert stream is not None and stream.started_at is not None
    rebuilt = np.zeros(len(rec.right), dtype="<i2")
    worst = 0
    for seg in stream.heard:
        want = pcm(seg.data)
        at = round((seg.start - stream.started_at) * 8000)
        if not want.any():
            continue  # silence: matches anywhere, and rebuilds as zeros
        found = [
            d
            for d in sorted(range(-FRAME, FRAME + 1), key=abs)
            if at + d >= 0
            and at + d + len(want) <= len(rec.right)
            and np.array_equal(rec.right[at + d : at + d + len(want)], want)
        ]
        assert found, f"heard segment at {seg.start - stream.started_at:.3f} s not in the recording"
        d = found[0]
        worst = max(worst, abs(d))
        rebuilt[at + d : at + d + len(want)] = want
    # Nothing but what was heard: cleared and never-played audio is absent.  Where a
    # clear (or the end) cut a chunk, the bridge's cut may sit up to a frame away from
    # the caller's, like every other placement: only there may the two differ.
    cuts = [round((t - stream.started_at) * 8000) for t in stream.clears]
    if stream.ended_at is not None:
        cuts.append(round((stream.ended_at - stream.started_at) * 8000))
    diff = np.flatnonzero(rec.right != rebuilt)
    stray = [int(i) for i in diff if not any(abs(int(i) - c) <= FRAME for c in cuts)]
    assert not stray, (
        f"{len(stray)} samples differ away from any cut, {stray[0]}..{stray[-1]}; cuts {cuts}"
    )
    return worst
