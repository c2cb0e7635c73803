"""The worker group of ``bridge serve --workers N``, as the supervisor tells its workers.

The supervisor (:mod:`bridge.ops.supervisor`) owns one temporary directory per run:

* ``metrics/``: prometheus-client's multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``
  of every worker), so ``/metrics`` on any worker reports the whole group;
* ``group.json``: :class:`GroupStatus`, rewritten (atomically: write, then rename) on
  every worker start and exit.  Workers read it for ``/readyz`` (the ``workers`` check)
  and for the group's ``process_*`` figures (the live workers' pids).

A worker reads the file at most every :data:`READ_EVERY_S` (``/readyz`` may be polled
often, and it is reachable before auth): a cached answer is at most that stale.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

GROUP_FILE = "group.json"
METRICS_DIR = "metrics"
READ_EVERY_S = 0.5
OK = "ok"


class GroupStatus(msgspec.Struct, frozen=True):
    expected: int  # workers the supervisor runs (--workers)
    pids: dict[str, int]  # worker index -> pid of the worker running now
    stopping: bool = False  # the supervisor got SIGTERM/SIGINT: every worker drains

    def check(self) -> str:
        """The ``workers`` readiness check: ``ok`` while every worker is running."""
        if self.stopping:
            return "the worker group is shutting down"
        if len(self.pids) < self.expected:
            missing = sorted(set(map(str, range(self.expected))) - set(self.pids), key=int)
            return (
                f"{len(self.pids)} of {self.expected} workers running "
                f"(restarting: {', '.join(missing)})"
            )
        return OK


def write_status(group_dir: Path, status: GroupStatus) -> None:
    tmp = group_dir / f".{GROUP_FILE}.{os.getpid()}"
    tmp.write_bytes(msgspec.json.encode(status))
    os.replace(tmp, group_dir / GROUP_FILE)  # readers see the old file or the new, whole


def read_status(group_dir: Path) -> GroupStatus | None:
    """The supervisor's last word, or None when there is none (yet) or it is unreadable."""
    try:
        return msgspec.json.decode((group_dir / GROUP_FILE).read_bytes(), type=GroupStatus)
    except (OSError, msgspec.DecodeError):
        return None


class GroupView:
    """One worker's view of its group: cached :func:`read_status`."""

    def __init__(
        self, group_dir: Path, index: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.dir = group_dir
        self.index = index
        self.clock = clock
        self._status: GroupStatus | None = None
        self._read_at = -READ_EVERY_S

    @property
    def metrics_dir(self) -> Path:
        return self.dir / METRICS_DIR

    def status(self) -> GroupStatus | None:
        now = self.clock()
        if now - self._read_at >= READ_EVERY_S:
            self._status = read_status(self.dir)
            self._read_at = now
        return self._status

    def check(self) -> str:
        status = self.status()
        return "no word from the supervisor" if status is None else status.check()

    def pids(self) -> list[int]:
        """The live workers' pids (this one at least, before the supervisor has written)."""
        status = self.status()
        pids = set(status.pids.values()) if status is not None else set()
        pids.add(os.getpid())
        return sorted(pids)
