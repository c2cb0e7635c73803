"""Retention: recordings older than retention_days are deleted, periodically."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from bridge.recording.retention import DAY_S, delete_expired
from tests.fixtures.bridge import eventually
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.recording.conftest import recording_bridge


def aged(path: Path, days: float, now: float) -> Path:
    path.write_bytes(b"RIFF")
    os.utime(path, (now - days * DAY_S, now - days * DAY_S))
    return path


def test_only_old_recordings_are_deleted(tmp_path: Path) -> None:
    now = time.time()
    old = aged(tmp_path / "CAold.wav", 31, now)
    young = aged(tmp_path / "CAyoung.wav", 29, now)
    other = aged(tmp_path / "notes.txt", 400, now)  # not ours to delete
    (tmp_path / "sub.wav").mkdir()  # not a file
    assert delete_expired(tmp_path, 30, now) == (1, 0)
    assert not old.exists() and young.exists() and other.exists()
    assert delete_expired(tmp_path, 0, now) == (0, 0)  # 0 = keep forever
    assert young.exists()
    assert delete_expired(tmp_path / "missing", 30, now) == (0, 0)


async def test_the_bridge_cleans_up_periodically(
    platform_emulator: PlatformEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    first = aged(tmp_path / "CAfirst.wav", 2, now)
    keep = aged(tmp_path / "CAkeep.wav", 0.5, now)
    caplog.set_level(logging.INFO, logger="bridge.recording")
    settings = {"retention_days": 1.0, "cleanup_interval_s": 0.2}
    async with recording_bridge(platform_emulator, tmp_path, recording=settings) as bridge:
        await eventually(lambda: not first.exists())  # at start
        later = aged(tmp_path / "CAlater.wav", 3, now)
        await eventually(lambda: not later.exists())  # on a later run
        assert keep.exists()
        assert bridge.metric("bridge_recordings_deleted_total") == 2
    runs = [r for r in caplog.records if r.getMessage() == "recording.retention"]
    assert [r.bridge_fields["deleted"] for r in runs] == [1, 1]  # type: ignore[attr-defined]
