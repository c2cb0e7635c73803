"""Operations of one app, in one object (``app.state.ops``): drain, readiness, metrics.

:func:`bridge.app.build_bridge` builds it beside the call services:

* its :class:`~bridge.ops.drain.Drain` is the first link of the webhook's admission
  (built there too, and handed in here);
* ``/healthz``, ``/readyz``, ``/metrics`` join the app's routes (:func:`routes`);
* :meth:`lifespan` binds the scrape-time gauges to the running loop and runs the
  upstream probe (:mod:`bridge.ops.upstream`) and the event-loop lag monitor
  (:mod:`bridge.ops.loop_lag`) while the app is up.

``bridge serve`` calls ``await ops.drain.run()`` on SIGTERM before stopping the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from bridge.call.services import CallServices
from bridge.config import OpsConfig
from bridge.metrics import Metrics
from bridge.ops.drain import Drain
from bridge.ops.group import GroupView
from bridge.ops.health import Readiness, health_routes, readiness, security_warnings
from bridge.ops.loop_lag import LagRecorder, lag_loop
from bridge.ops.upstream import Probe, probe_loop
from bridge.platform.client import PlatformClient


class Operations:
    def __init__(
        self,
        cfg: OpsConfig,
        services: CallServices,
        drain: Drain,
        platform: PlatformClient | None,
    ) -> None:
        self.cfg = cfg
        self.services = services
        self.metrics = services.metrics
        self.upstream = services.upstream
        self.drain = drain
        self.probe: Probe | None = None
        # Set by ``bridge serve`` in a worker of ``--workers N``: the group's readiness.
        self.group: GroupView | None = None
        if platform is not None:
            self.probe = lambda: platform.list_agents(page_size=1)

    def readiness(self) -> Readiness:
        return readiness(
            draining=self.drain.draining,
            store=self.services.store,
            upstream=self.upstream,
            stale_s=self.cfg.upstream_stale_s,
            warnings=security_warnings(self.services.config.twilio),
            workers=self.group.check() if self.group is not None else None,
        )

    def routes(self) -> list[BaseRoute]:
        return health_routes(self.metrics, self.readiness)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.metrics.bind_loop(asyncio.get_running_loop(), lambda: self.readiness().ready)
        lag = asyncio.create_task(
            lag_loop(LagRecorder(self.metrics.loop_lag_seconds, self.metrics.loop_lag_max_seconds)),
            name="loop-lag",
        )
        probe: asyncio.Task[None] | None = None
        shared: asyncio.Task[None] | None = None
        if self.metrics.multiprocess is not None:
            shared = asyncio.create_task(_refresh_loop(self.metrics), name="metrics-refresh")
        if self.probe is not None and self.cfg.upstream_probe_interval_s > 0:
            probe = asyncio.create_task(
                probe_loop(self.upstream, self.probe, self.cfg.upstream_probe_interval_s),
                name="upstream-probe",
            )
        try:
            yield
        finally:
            for task in (probe, lag, shared):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


REFRESH_EVERY_S = 1.0


async def _refresh_loop(metrics: Metrics) -> None:
    """A worker's scrape-time gauges, written where the other workers' /metrics read them."""
    while True:
        metrics.refresh()
        await asyncio.sleep(REFRESH_EVERY_S)
