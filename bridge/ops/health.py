"""Liveness, readiness and the metrics page: ``/healthz``, ``/readyz``, ``/metrics``.

* ``GET /healthz``: 200 while the process serves HTTP at all (liveness: restart me if
  this fails).  It checks nothing else on purpose: a draining or degraded bridge must
  not be killed, only taken out of rotation.
* ``GET /readyz``: 200 when the bridge should get new calls, else 503; the JSON body
  names every check and its state either way.  The checks (:func:`readiness`):

  =========  ============================================================================
  draining   not draining for shutdown (SIGTERM turns this 503 at once)
  store      call-record writes are succeeding (``Store.healthy``: not failing, not
             dropping); calls would still flow, but this pod is the one to avoid
  upstream   the Agents Platform answered within ``ops.upstream_stale_s``
             (:mod:`bridge.ops.upstream`)
  workers    ``bridge serve --workers N`` only: every worker of the group is running and
             the group is not shutting down (the supervisor's view,
             :mod:`bridge.ops.group`).  The other checks are the answering worker's own;
             a worker being restarted makes every worker's ``/readyz`` 503 until it is
             back, so a crash-looping group leaves rotation while one restart is a blip
  =========  ============================================================================

  ``warnings`` names settings that leave the bridge open on purpose, a dev set-up
  (:func:`security_warnings`: Twilio signatures not checked).  They do not make it
  unready: start-up already refused them where the bridge is reachable from outside,
  unless the operator turned the check off explicitly.

* ``GET /metrics``: the Prometheus text page of the app's registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.config import TwilioConfig
from bridge.metrics import Metrics
from bridge.platform.reachability import UpstreamHealth
from bridge.store import Store

HEALTHZ_PATH, READYZ_PATH, METRICS_PATH = "/healthz", "/readyz", "/metrics"
OK = "ok"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str]  # name -> "ok" or what is wrong
    warnings: dict[str, str] = field(default_factory=dict)  # name -> what is insecure

    def body(self) -> dict[str, object]:
        return {"ready": self.ready, "checks": self.checks, "warnings": self.warnings}


def security_warnings(twilio: TwilioConfig) -> dict[str, str]:
    """Insecure settings in force, by name (empty when there are none)."""
    if twilio.signatures_enforced:
        return {}
    why = (
        "turned off (BRIDGE_VALIDATE_TWILIO_SIGNATURES=false)"
        if twilio.validate_signatures is False
        else "no Twilio auth token (allowed while the bridge is only on loopback)"
    )
    return {
        "twilio_signatures": f"not checked: {why}; anyone who can reach /twilio/ "
        "can open calls to your agents"
    }


def readiness(
    *,
    draining: bool,
    store: Store | None,
    upstream: UpstreamHealth,
    stale_s: float,
    warnings: Mapping[str, str] | None = None,
    workers: str | None = None,
) -> Readiness:
    checks = {"draining": "draining for shutdown" if draining else OK}
    if store is None:
        checks["store"] = OK
    elif not store.healthy:
        checks["store"] = f"call-record writes failing ({store.pending_writes} pending)"
    else:
        checks["store"] = OK
    if upstream.reachable(stale_s):
        checks["upstream"] = OK
    else:
        age = upstream.since_ok()
        checks["upstream"] = (
            "the platform has not answered yet"
            if age is None
            else f"no answer from the platform for {age:.0f} s (limit {stale_s:g} s)"
        )
        if upstream.last_failure_kind is not None:
            checks["upstream"] += f"; last failure: {upstream.last_failure_kind}"
    if workers is not None:
        checks["workers"] = workers
    return Readiness(all(v == OK for v in checks.values()), checks, dict(warnings or {}))


def health_routes(metrics: Metrics, ready: Callable[[], Readiness]) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        r = ready()
        return JSONResponse(r.body(), status_code=200 if r.ready else 503)

    async def metrics_page(request: Request) -> Response:
        # Rendered in the event loop's thread: the task count reads the running loop.
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return [
        Route(HEALTHZ_PATH, healthz, methods=["GET"]),
        Route(READYZ_PATH, readyz, methods=["GET"]),
        Route(METRICS_PATH, metrics_page, methods=["GET"]),
    ]
