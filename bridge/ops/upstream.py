"""Is the Agents Platform reachable?  What readiness and the upstream metrics go by.

:class:`UpstreamHealth` remembers when the platform last *answered* and the last
failure.  Answers come from two places:

* every agent conversation socket a call opens (the driver reports success, or the
  failure with its :func:`connect_error_kind`);
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
import time
from collections.abc import Awaitable, Callable

from bridge.errors import PlatformApiError
from bridge.log import log_event

logger = logging.getLogger("bridge.ops")

Clock = Callable[[], float]
Probe = Callable[[], Awaitable[object]]


class UpstreamHealth:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.last_ok: float | None = None
        self.last_failure: float | None = None
        self.last_failure_kind: str | None = None

    def ok(self) -> None:
        self.last_ok = self.clock()

    def failed(self, kind: str) -> None:
        self.last_failure = self.clock()
        self.last_failure_kind = kind

    def since_ok(self) -> float | None:
        """Seconds since the platform last answered (None: never)."""
        return None if self.last_ok is None else self.clock() - self.last_ok

    def reachable(self, stale_s: float) -> bool:
        """The readiness rule: an answer within ``stale_s`` (0: not checked)."""
        if stale_s <= 0:
            return True
        age = self.since_ok()
        return age is not None and age <= stale_s


def connect_error_kind(e: PlatformApiError) -> str:
    """The ``bridge_upstream_errors_total{kind}`` of a failed agent connect.

    The messages are :class:`~bridge.convai.client.AgentConnector`'s (the signed-URL
    step's errors come from the REST client: they carry a status when one came back).
    """
    m = e.message
    if m.startswith("signed URL request timed out"):
        return "signed_url_timeout"
    if m.startswith("conversation socket refused"):
        return "ws_rejected"  # an HTTP status instead of 101
    if m.startswith("conversation socket failed to open: TimeoutError"):
        return "ws_timeout"
    if m.startswith("conversation socket failed to open"):
        return "ws_unreachable"  # refused, DNS, TLS, reset
    if "get-signed-url" in m:
        return "signed_url" if e.status is not None else "signed_url_unreachable"
    return "other"


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
