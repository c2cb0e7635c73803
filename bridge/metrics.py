"""Prometheus metrics of the bridge, defined once.

One :class:`Metrics` object per app (its own ``CollectorRegistry``, so several apps in
one test process don't collide).  Hot-path rule: nothing here is touched per audio
frame.  Per-frame counts are kept as plain ints on the call session and added to the
counters when the call ends (or read on scrape via ``Gauge.set_function``); per-frame
timing is sampled (1 frame in ``TRANSCODE_SAMPLE_EVERY``, 1 agent audio event in
``RELAY_SAMPLE_EVERY``).

Besides the bridge's own families the registry carries the standard ``process_*``
collector (CPU seconds, RSS, open fds: the load test reads them from a remote bridge)
and, once :meth:`Metrics.bind_loop` has run, ``bridge_asyncio_tasks`` and
``bridge_open_sockets``, read at scrape time: a leak of either shows as a count that
does not return to its idle value.  The store adds ``bridge_store_*`` to the same
registry (:class:`bridge.store.writer.StoreMetrics`).

**Worker processes** (``bridge serve --workers N``, :mod:`bridge.ops.supervisor`): each
worker is given a :class:`Multiprocess`, and prometheus-client's multiprocess mode keeps
every value in files shared by the group (``PROMETHEUS_MULTIPROC_DIR``, set by the
supervisor before the worker starts).  ``/metrics`` on any worker then reports the
group: counters and histograms summed over every worker that ever ran (a restarted
worker's counts are kept), gauges by their ``multiprocess_mode`` below (``livesum``:
summed over the workers alive now, e.g. ``bridge_active_calls``; ``livemax`` /
``livemin``: the worst / the least of them), and ``process_*`` summed over the live
workers' pids (:class:`GroupProcessCollector`; ``start_time`` the oldest, ``max_fds``
one worker's limit).  Gauges read at scrape time are set every second instead
(:meth:`Metrics.refresh`: another worker's value is at most that old), since a
function cannot be shared between processes.  In one process none of this applies:
the page is the app's registry, exactly as before.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

TRANSCODE_SAMPLE_EVERY = 50  # one 20 ms frame per second of audio per call
RELAY_SAMPLE_EVERY = 10  # agent audio events: ~1 a second per call at 100 ms chunks

# Directions of relayed audio frames (``bridge_frames_total{direction}``).
FROM_CALLER, TO_AGENT, FROM_AGENT, TO_CALLER = "from_caller", "to_agent", "from_agent", "to_caller"

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Voice-to-voice: fast agents answer in a few hundred ms (50 ms steps to tell them
# apart: the load test's quantiles come from these), slow ones take seconds.
_TURN_BUCKETS_S = (*(round(0.05 * i, 2) for i in range(1, 21)), 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
_FRAME_BUCKETS_S = (5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3)
_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def open_sockets() -> int:
    """Sockets this process holds (``/proc/self/fd`` links to ``socket:[…]``); 0 elsewhere."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    n = 0
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                n += 1
        except OSError:  # closed between listdir and readlink
            pass
    return n


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client when imported


@dataclass(frozen=True)
class Multiprocess:
    """This process is one worker of a group whose values share ``dir``."""

    dir: str
    pids: Callable[[], Sequence[int]]  # the group's live workers (process_* over them)


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


class GroupProcessCollector(Collector):
    """``process_*`` of several processes as one: the standard collector's families,
    summed (CPU, memory, open fds), oldest start time, one process's fd limit."""

    def __init__(self, pids: Callable[[], Sequence[int]]) -> None:
        self.pids = pids

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for pid in self.pids():
            # registry=None: a throwaway reader of /proc/<pid>, registered nowhere.
            for family in ProcessCollector(pid=_constant(pid), registry=None).collect():
                value = family.samples[0].value
                have = merged.get(family.name)
                if have is None:
                    merged[family.name] = family
                    continue
                old = have.samples[0]
                if family.name.endswith("start_time_seconds"):
                    new = min(old.value, value)
                elif family.name.endswith("max_fds"):
                    new = old.value
                else:
                    new = old.value + value
                have.samples[0] = old._replace(value=new)
        return list(merged.values())


class Metrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, multiprocess: Multiprocess | None = None
    ) -> None:
        r = self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=r)
        self.multiprocess = multiprocess
        self._exposed = r
        if multiprocess is not None:
            if os.environ.get(MULTIPROC_ENV) != multiprocess.dir:
                # prometheus-client picked its value store when imported: too late now.
                raise RuntimeError(f"{MULTIPROC_ENV} must be {multiprocess.dir} at start-up")
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=multiprocess.dir)  # type: ignore[no-untyped-call]
            self._exposed.register(GroupProcessCollector(multiprocess.pids))
        # Scrape-time gauges and their readers (bind_loop); set by refresh() when shared.
        self._scraped: list[tuple[Gauge, Callable[[], float]]] = []
        self.active_calls = Gauge(
            "bridge_active_calls",
            "Calls with a live media stream",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.calls_total = Counter(
            "bridge_calls",
            "Calls ended, by outcome and end reason",
            ["outcome", "reason"],
            registry=r,
        )
        self.webhooks_total = Counter(
            "bridge_webhooks", "Voice webhooks answered, by TwiML outcome", ["outcome"], registry=r
        )
        self.refused_total = Counter(
            "bridge_refused_calls",
            "Voice webhooks turned away by admission, by reason (draining, over_capacity)",
            ["reason"],
            registry=r,
        )
        self.stream_refused_total = Counter(
            "bridge_stream_refused",
            "Media streams refused at start, by reason (missing, bad_mac, expired, replayed, "
            "duplicate_call, account_mismatch, over_capacity, …)",
            ["reason"],
            registry=r,
        )
        self.edge_refused_total = Counter(
            "bridge_edge_refused",
            "Connections the edge answered or closed before routing, by reason (busy, "
            "head_timeout, body_timeout, upgrade_timeout, head_too_large, too_many_headers, "
            "body_too_large, bad_framing)",
            ["reason"],
            registry=r,
        )
        self.signature_failures_total = Counter(
            "bridge_signature_failures",
            "Requests rejected for a bad X-Twilio-Signature",
            ["endpoint"],
            registry=r,
        )
        self.upstream_errors_total = Counter(
            "bridge_upstream_errors",
            "Agent platform failures by kind (connect step, or the socket failing mid-call)",
            ["kind"],
            registry=r,
        )
        self.first_audio_seconds = Histogram(
            "bridge_first_audio_seconds",
            "Stream start to first agent audio sent to the caller",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.turn_latency_seconds = Histogram(
            "bridge_turn_latency_seconds",
            "Per agent turn, from the caller stopping speaking (stage: agent_audio received, "
            "sent to Twilio, heard by the caller); stage=interruption: caller speech over "
            "the agent to clear sent",
            ["stage"],
            buckets=_TURN_BUCKETS_S,
            registry=r,
        )
        self.relay_seconds = Histogram(
            "bridge_relay_seconds",
            "Agent audio event received → its first frame written to Twilio "
            f"(sampled 1 in {RELAY_SAMPLE_EVERY})",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.agent_ping_ms = Histogram(
            "bridge_agent_ping_ms",
            "ping_ms reported by the agent platform (every ping)",
            buckets=(10, 25, 50, 100, 200, 400, 800, 1600),
            registry=r,
        )
        self.frames_total = Counter(
            "bridge_frames",
            "Audio frames relayed: Twilio media frames from_caller/to_caller, "
            "agent audio messages to_agent/from_agent (added when each call ends)",
            ["direction"],
            registry=r,
        )
        self.audio_bytes_total = Counter(
            "bridge_audio_bytes", "Audio bytes relayed", ["direction"], registry=r
        )
        self.interruptions_total = Counter(
            "bridge_interruptions", "Barge-ins (agent interruption events)", registry=r
        )
        self.dropped_audio_total = Counter(
            "bridge_dropped_audio_events",
            "Audio dropped: stale after barge-in, or shed under backpressure",
            ["reason"],
            registry=r,
        )
        self.bad_frames_total = Counter(
            "bridge_bad_frames",
            "Malformed frames received, by peer (twilio, agent)",
            ["peer"],
            registry=r,
        )
        self.transcode_seconds = Histogram(
            "bridge_transcode_seconds",
            f"Transcoding time per 20 ms frame (sampled 1 in {TRANSCODE_SAMPLE_EVERY})",
            ["direction"],
            buckets=_FRAME_BUCKETS_S,
            registry=r,
        )
        self.open_tasks = Gauge(
            "bridge_asyncio_tasks", "asyncio tasks alive", registry=r, multiprocess_mode="livesum"
        )
        self.open_sockets = Gauge(
            "bridge_open_sockets",
            "Sockets held by the process (listening included)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.draining = Gauge(
            "bridge_draining",
            "1 while draining for shutdown",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.ready = Gauge(
            "bridge_ready",
            "1 when /readyz answers 200 (workers: on every live worker)",
            registry=r,
            multiprocess_mode="livemin",
        )
        # Security posture and the admin API's door (bridge.admin.routes.BearerAuth).
        self.twilio_signatures_enforced = Gauge(
            "bridge_twilio_signatures_enforced",
            "1 when every Twilio request's X-Twilio-Signature is checked, 0 when not (insecure)",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.admin_auth_failures_total = Counter(
            "bridge_admin_auth_failures",
            "Admin API requests with a missing or wrong token (answered 401)",
            registry=r,
        )
        self.admin_auth_throttled_total = Counter(
            "bridge_admin_auth_throttled",
            "Admin API requests refused with 429: too many failed authentications from "
            "their address",
            registry=r,
        )
        # Event-loop lag (bridge.ops.loop_lag): how late a 50 ms timer fires.
        self.loop_lag_seconds = Histogram(
            "bridge_event_loop_lag_seconds",
            "How late the event loop ran a 50 ms timer (time it was held by other work)",
            buckets=_LAG_BUCKETS_S,
            registry=r,
        )
        self.loop_lag_max_seconds = Gauge(
            "bridge_event_loop_lag_max_seconds",
            "Worst event-loop lag since the process started",
            registry=r,
            multiprocess_mode="livemax",
        )
        # Call recordings (bridge.recording): written, and stopped by a write error.
        self.recordings_total = Counter(
            "bridge_recordings", "Call recordings finalised (complete or stopped)", registry=r
        )
        self.recording_errors_total = Counter(
            "bridge_recording_errors",
            "Call recordings stopped by a write error, by errno name (enospc, efbig, ...)",
            ["reason"],
            registry=r,
        )
        self.recordings_deleted_total = Counter(
            "bridge_recordings_deleted",
            "Recordings deleted by the retention cleanup",
            registry=r,
        )

    def bind_loop(self, loop: asyncio.AbstractEventLoop, ready: Callable[[], bool]) -> None:
        """Read task count, sockets and readiness on scrape (the app's start-up calls it)."""
        self._scraped = [
            (self.open_tasks, lambda: len(asyncio.all_tasks(loop))),
            (self.open_sockets, open_sockets),
            (self.ready, lambda: 1.0 if ready() else 0.0),
        ]
        if self.multiprocess is None:
            for gauge, read in self._scraped:
                gauge.set_function(read)

    def refresh(self) -> None:
        """Shared values only: set the scrape-time gauges now (every second, and on scrape)."""
        if self.multiprocess is not None:
            for gauge, read in self._scraped:
                gauge.set(read())

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (the group's, for a worker)."""
        self.refresh()
        return generate_latest(self._exposed), CONTENT_TYPE_LATEST
