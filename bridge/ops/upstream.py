"""Is the Agents Platform reachable?  The probe that asks it when calls do not.

:class:`~bridge.platform.reachability.UpstreamHealth` remembers when the platform
last *answered* and the last failure.  Answers come from two places:

* every agent conversation socket a call opens (the driver reports success, or the
  failure with its :func:`~bridge.platform.reachability.connect_error_kind`);
* :func:`probe_loop`, which asks the REST API (``GET /v1/convai/agents?page_size=1``)
  whenever nothing has answered for ``interval_s``.  Any HTTP answer below 500 counts as
  reachable, a 401 included: the platform is there, the key is the operator's problem
  (logged), and calls with public agents still work.

The rule readiness applies (:meth:`UpstreamHealth.reachable`): the platform answered
within the last ``stale_s`` seconds.  One failed call does not make a bridge unready; a
platform that has been silent for ``stale_s`` does, and the first answer makes it ready
again.  Pure bookkeeping with the clock passed in; the probe loop is the only I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bridge.errors import PlatformApiError
from bridge.log import log_event
from bridge.platform.reachability import UpstreamHealth

logger = logging.getLogger("bridge.ops")

Probe = Callable[[], Awaitable[object]]


async def probe_once(health: UpstreamHealth, probe: Probe) -> bool:
    """Ask the platform once; record and return whether it answered."""
    try:
        await probe()
    except PlatformApiError as e:
        if e.status is not None and e.status < 500:
            health.ok()
            if e.status in (401, 403):
                log_event(logger, "ops.upstream_auth", logging.WARNING, status=e.status)
            return True
        health.failed("probe")
        log_event(logger, "ops.upstream_probe_failed", logging.WARNING, error=str(e))
        return False
    health.ok()
    return True


async def probe_loop(health: UpstreamHealth, probe: Probe, interval_s: float) -> None:
    """Probe at once, then whenever nothing answered for ``interval_s`` (runs until cancelled)."""
    was_up: bool | None = None
    while True:
        age = health.since_ok()
        if age is None or age >= interval_s:
            up = await probe_once(health, probe)
            if up != was_up:
                log_event(
                    logger,
                    "ops.upstream_up" if up else "ops.upstream_down",
                    logging.INFO if up else logging.ERROR,
                )
                was_up = up
            age = health.since_ok()
        wait = interval_s - age if age is not None and age < interval_s else interval_s
        await asyncio.sleep(max(wait, 0.05))
