"""The supervisor of ``bridge serve --workers N``: N worker processes on one port.

The supervisor listens on nothing.  Each worker is a process of its own (``python -m
bridge.cli … serve --worker-index I``, started with exec, never a fork of this process
once its event loop and threads exist) that binds the same address with
``SO_REUSEPORT``: the kernel spreads new connections over the workers' listening
sockets, and a worker's calls live and end inside it.

* **Signals.**  Workers run in sessions of their own, so a Ctrl-C in the terminal
  reaches only the supervisor; it forwards SIGTERM/SIGINT to every worker, each
  drains as a lone ``bridge serve`` does (:mod:`bridge.ops.drain`) and exits 0; a
  second signal is forwarded too (the workers end their calls at once).  The
  supervisor exits 0 when every worker did, else 1.  If the supervisor itself is
  killed, each worker notices its parent is gone and drains the same way.
* **Restarts.**  A worker that exits while the group is not stopping is started again
  in the same slot, the others untouched, after :meth:`RestartPolicy.delay` (doubling
  per exit of that slot within a minute, capped): a crash loop costs a start every
  :data:`MAX_DELAY_S` at most.  Exit status 2 is the bridge refusing to start (bad
  configuration, the port held by another program): restarting cannot help, so the
  group stops and the supervisor exits 2.
* **Metrics and readiness** of the group go through a temporary directory
  (:mod:`bridge.ops.group`): ``metrics/`` is every worker's ``PROMETHEUS_MULTIPROC_DIR``
  (an exited worker's live gauges are dropped with ``mark_process_dead``), and
  ``group.json`` says which workers run.  The directory is removed at exit.

Every start, exit and restart is logged with the worker's index and pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

from bridge.log import log_event
from bridge.metrics import MULTIPROC_ENV
from bridge.ops.group import METRICS_DIR, GroupStatus, write_status

logger = logging.getLogger("bridge.supervisor")

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_REFUSED = 2  # ``bridge`` could not start (BridgeError): a restart would fail again
BASE_DELAY_S = 0.5
MAX_DELAY_S = 30.0
WINDOW_S = 60.0


@dataclass
class RestartPolicy:
    """How long a slot waits before its worker is started again (pure)."""

    base_s: float = BASE_DELAY_S
    max_s: float = MAX_DELAY_S
    window_s: float = WINDOW_S
    exits: list[float] = field(default_factory=list)  # when this slot's worker died

    def delay(self, now: float) -> float:
        """Record an unexpected exit at ``now``; the wait before the next start."""
        self.exits = [t for t in self.exits if now - t < self.window_s] + [now]
        return min(self.max_s, self.base_s * 2.0 ** (len(self.exits) - 1))


@contextlib.contextmanager
def group_directory() -> Iterator[Path]:
    """A fresh directory for one run's shared metrics and status, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="bridge-workers-"))
    try:
        (path / METRICS_DIR).mkdir()
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Supervisor:
    def __init__(
        self,
        workers: int,
        command: Callable[[int], tuple[list[str], dict[str, str]]],
        env: Mapping[str, str],
        group_dir: Path,
        *,
        policy: Callable[[], RestartPolicy] = RestartPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workers = workers
        self.command = command  # worker I: its argv, and variables of its own
        self.env = {**env, MULTIPROC_ENV: str(group_dir / METRICS_DIR)}
        self.group_dir = group_dir
        self.policy = policy
        self.clock = clock
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.final: dict[int, int] = {}  # exit status of each slot's last worker, once stopped
        self.refused = False
        self.signals: list[str] = []
        self._stop = asyncio.Event()

    # -- signals -------------------------------------------------------------------

    def on_signal(self, sig: signal.Signals) -> None:
        self.signals.append(sig.name)
        log_event(logger, "supervisor.signal", signal=sig.name, workers=len(self.procs))
        self.stop()
        for proc in list(self.procs.values()):
            self._send(proc, sig)  # a second signal is forwarded too: workers end calls now

    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        if not self.stopping():
            self._stop.set()
            self._publish()

    @staticmethod
    def _send(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    # -- the run -------------------------------------------------------------------

    async def run(self) -> int:
        """Start the workers, keep them running until a signal, return the exit status."""
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self.on_signal, sig)
        self._publish()
        log_event(logger, "supervisor.started", workers=self.workers, group_dir=str(self.group_dir))
        try:
            await asyncio.gather(*(self._slot(i) for i in range(self.workers)))
        finally:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
            for proc in self.procs.values():  # only after an error of our own
                self._send(proc, signal.SIGKILL)
        status = (
            EXIT_REFUSED
            if self.refused
            else (0 if all(rc == 0 for rc in self.final.values()) else 1)
        )
        log_event(logger, "supervisor.stopped", status=status, worker_status=self.final)
        return status

    async def _slot(self, index: int) -> None:
        """Worker ``index``: started, and started again after each unexpected exit."""
        policy = self.policy()
        while not self.stopping():
            argv, own_env = self.command(index)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env={**self.env, **own_env},
                start_new_session=True,  # the terminal's Ctrl-C is the supervisor's to forward
            )
            self.procs[index] = proc
            self._publish()
            log_event(logger, "worker.started", worker=index, pid=proc.pid)
            if self.stopping():  # the signal came while it was being started
                self._send(proc, signal.SIGTERM)
            rc = await proc.wait()
            del self.procs[index]
            mark_process_dead(proc.pid, self.env[MULTIPROC_ENV])  # type: ignore[no-untyped-call]
            self._publish()
            log_event(
                logger,
                "worker.exited",
                logging.INFO if self.stopping() and rc == 0 else logging.WARNING,
                worker=index,
                pid=proc.pid,
                status=rc,
                stopping=self.stopping(),
            )
            if self.stopping():
                # Killed by the forwarded signal before its handlers were in place: it
                # was still starting, so it had no calls to drain.
                clean = rc in (0, -signal.SIGTERM, -signal.SIGINT)
                self.final[index] = 0 if clean else rc
                return
            if rc == EXIT_REFUSED:
                log_event(
                    logger,
                    "worker.refused_to_start",
                    logging.ERROR,
                    worker=index,
                    note="not restarted: the bridge refused its configuration; stopping all",
                )
                self.refused = True
                self.stop()
                for other in list(self.procs.values()):
                    self._send(other, signal.SIGTERM)
                self.final[index] = rc
                return
            delay = policy.delay(self.clock())
            log_event(
                logger,
                "worker.restarting",
                logging.WARNING,
                worker=index,
                delay_s=delay,
                exits_last_minute=len(policy.exits),
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()
        self.final.setdefault(index, 0)

    def _publish(self) -> None:
        pids = {str(i): p.pid for i, p in self.procs.items() if p.returncode is None}
        write_status(self.group_dir, GroupStatus(self.workers, pids, self.stopping()))
