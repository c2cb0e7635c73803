"""Is the Agents Platform reachable?  The bookkeeping readiness and the metrics go by.

:class:`UpstreamHealth` remembers when the platform last *answered* and the last
failure.  Answers come from every agent conversation socket a call opens (the call
driver reports success, or the failure with its :func:`connect_error_kind`) and from the
REST probe of :mod:`bridge.ops.upstream`.

The rule readiness applies (:meth:`UpstreamHealth.reachable`): the platform answered
within the last ``stale_s`` seconds.  Pure bookkeeping with the clock passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bridge.errors import PlatformApiError

Clock = Callable[[], float]


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
