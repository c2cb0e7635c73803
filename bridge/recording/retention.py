"""Retention: recordings older than ``recording.retention_days`` are deleted.

A background task of the app (:func:`retention_cleanup`) runs once at start, then every
``recording.cleanup_interval_s``; the deletion itself runs in a worker thread (a
directory of many files must not hold the event loop).  Age is the file's mtime: the
last write, i.e. when its call ended.  Only ``*.wav`` files directly in the directory
are considered: nothing else there is the bridge's to delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bridge.config import RecordingConfig
from bridge.log import log_event
from bridge.metrics import Metrics

logger = logging.getLogger("bridge.recording")

DAY_S = 86400.0


def delete_expired(directory: Path, retention_days: float, now: float) -> tuple[int, int]:
    """Delete ``*.wav`` files last written before ``now - retention_days``.

    Returns (deleted, failed); a missing directory has nothing to delete."""
    if retention_days <= 0:
        return 0, 0
    cutoff = now - retention_days * DAY_S
    deleted = failed = 0
    try:
        entries = os.scandir(directory)
    except FileNotFoundError:
        return 0, 0
    with entries:
        for entry in entries:
            if not entry.name.endswith(".wav"):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    deleted += 1
            except FileNotFoundError:
                continue  # gone meanwhile
            except OSError:
                failed += 1
    return deleted, failed


async def cleanup_once(cfg: RecordingConfig, db: str, metrics: Metrics) -> int:
    directory = cfg.directory(db)
    deleted, failed = await asyncio.to_thread(
        delete_expired, directory, cfg.retention_days, time.time()
    )
    if deleted:
        metrics.recordings_deleted_total.inc(deleted)
    if deleted or failed:
        log_event(
            logger,
            "recording.retention",
            logging.WARNING if failed else logging.INFO,
            directory=str(directory),
            deleted=deleted,
            failed=failed,
            retention_days=cfg.retention_days,
        )
    return deleted


@contextlib.asynccontextmanager
async def retention_cleanup(cfg: RecordingConfig, db: str, metrics: Metrics) -> AsyncIterator[None]:
    """Run the periodic cleanup while the app runs (nothing when retention is 0)."""
    if cfg.retention_days <= 0:
        yield
        return

    async def loop() -> None:
        while True:
            try:
                await cleanup_once(cfg, db, metrics)
            except Exception as e:  # a bug here must not stop the next run
                log_event(
                    logger,
                    "recording.retention_failed",
                    logging.ERROR,
                    error=f"{type(e).__name__}: {e}",
                )
            await asyncio.sleep(cfg.cleanup_interval_s)

    task = asyncio.create_task(loop(), name="recording-retention")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
