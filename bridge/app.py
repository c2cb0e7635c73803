"""The bridge's ASGI application: ``create_app(config, …) -> Starlette``.

Everything shared lives on ``app.state``:

=====================  ==================================================================
``services``           :class:`~bridge.call.services.CallServices`: what calls use
``config``             the frozen :class:`~bridge.config.Config`
``store``              :class:`~bridge.store.Store` (call records, numbers)
``routing``            :class:`~bridge.routing.RoutingTable`
``calls``              :class:`~bridge.call.registry.LiveCalls` (``hangup(call_sid)``)
``metrics``            :class:`~bridge.ops.metrics.Metrics`
``platform``           :class:`~bridge.platform.client.PlatformClient` or None
``telephony``          :class:`~bridge.telephony.features.Telephony` (caps, live features)
``ops``                :class:`~bridge.ops.service.Operations` (drain, readiness)
=====================  ==================================================================

Routes are one list: :func:`~bridge.call.endpoints.twilio_routes`, the telephony, admin
and ops (``/healthz``, ``/readyz``, ``/metrics``) routes, plus ``extra_routes``.  Features with background
work pass ``lifespans``: async context managers entered at start-up, in order, and left
at shutdown in reverse.  Whatever ``create_app`` builds itself (the store, the platform
client, the Twilio REST client) it also closes; what the caller passes in is the
caller's to close.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from bridge.admin.routes import admin_routes
from bridge.admin.service import Provisioning, routing_sync
from bridge.call.admission import Admission, AdmitAll
from bridge.call.endpoints import twilio_routes
from bridge.call.services import CallServices
from bridge.call.session import SessionSettings
from bridge.call.tools import ToolRegistry, default_tools
from bridge.config import Config, ws_url_for
from bridge.convai.client import AgentConnector
from bridge.errors import ConfigError
from bridge.log import log_event
from bridge.ops.health import security_warnings
from bridge.ops.metrics import Metrics
from bridge.ops.service import Operations
from bridge.platform.client import PlatformClient
from bridge.routing import RoutingTable
from bridge.store import Store
from bridge.telephony.dialer import Dialer
from bridge.telephony.endpoints import TelephonyEndpoints
from bridge.telephony.features import Telephony
from bridge.twilio.rest import TwilioRest

logger = logging.getLogger("bridge.app")

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def create_app(
    config: Config,
    *,
    store: Store | None = None,
    routing: RoutingTable | None = None,
    platform: PlatformClient | None = None,
    connector: AgentConnector | None = None,
    tools: ToolRegistry | None = None,
    admission: Admission | None = None,
    metrics: Metrics | None = None,
    settings: SessionSettings | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    lifespans: Sequence[Lifespan] = (),
) -> Starlette:
    """The bridge app.  ``store=None`` opens ``config.store.db``; the platform client and
    the agent connector default to ``config.platform`` (``base_url`` must then be set)."""
    owned = contextlib.AsyncExitStack()  # what we build, we close at shutdown
    metrics = metrics if metrics is not None else Metrics()
    if store is None:
        store = Store.from_config(config.store, metrics.registry)
        owned.callback(store.close)
    if platform is None and config.platform.base_url is not None:
        platform = PlatformClient(
            config.platform.base_url,
            config.platform.api_key,
            timeout_s=config.platform.request_timeout_s,
            connect_timeout_s=config.platform.connect_timeout_s,
        )
        owned.push_async_callback(platform.aclose)
    if connector is None:
        connector = _connector(config, platform)
    services = CallServices(
        config=config,
        routing=routing if routing is not None else RoutingTable.from_config(config, store),
        connector=connector,
        settings=settings or SessionSettings.from_config(config),
        store=store,
        tools=tools if tools is not None else default_tools(),
        admission=admission if admission is not None else AdmitAll(),
        metrics=metrics,
    )
    # The drain is the innermost admission: the telephony caps below wrap it.
    ops = Operations(config.ops, services, platform)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services.twilio_rest = TwilioRest.from_config(config.twilio)
        log_event(
            logger,
            "bridge.started",
            public_url=config.public_url,
            stream_url=services.stream_url,
            agent_ws=connector.ws_base_url,
            signed_urls=connector.uses_signed_urls,
            signatures_enforced=config.twilio.signatures_enforced,
            twilio_rest=services.twilio_rest is not None,
        )
        metrics.twilio_signatures_enforced.set(1 if config.twilio.signatures_enforced else 0)
        for name, problem in security_warnings(config.twilio).items():
            log_event(logger, "bridge.insecure", logging.WARNING, setting=name, problem=problem)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if platform is not None:
                    await stack.enter_async_context(
                        routing_sync(services.routing, platform, config.platform.sync_interval_s)
                    )
                await stack.enter_async_context(ops.lifespan(app))
                for enter in lifespans:
                    await stack.enter_async_context(enter(app))
                yield
                # The graceful drain runs before this point, while the server still
                # serves: ``bridge serve`` awaits ``app.state.ops.drain.run()`` on
                # SIGTERM and only then stops uvicorn (see bridge.ops.drain).
        finally:
            if services.twilio_rest is not None:
                await services.twilio_rest.aclose()
            await owned.aclose()
            log_event(logger, "bridge.stopped", live_calls=len(services.calls))

    # Telephony features (transfer, keypad, limits, voicemail, outbound calls): tools,
    # admission and per-call watcher into the services, their routes next to the rest.
    telephony = Telephony(config.telephony, services.calls, store).install(services)
    phone = TelephonyEndpoints(telephony, Dialer(services, telephony))
    provisioning = Provisioning(services, platform)
    admin = admin_routes(provisioning, config.admin, metrics, phone.admin_routes())
    app = Starlette(
        routes=[
            *twilio_routes(),
            *phone.twilio_routes(),
            *admin,
            *ops.routes(),
            *extra_routes,
        ],
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.config = config
    app.state.store = store
    app.state.routing = services.routing
    app.state.calls = services.calls
    app.state.metrics = services.metrics
    app.state.platform = platform
    app.state.telephony = telephony
    app.state.ops = ops
    return app


def _connector(config: Config, platform: PlatformClient | None) -> AgentConnector:
    p = config.platform
    if p.base_url is None:
        raise ConfigError(
            "platform.base_url",
            "is not set",
            "the Agents Platform URL (bridge serve starts the built-in emulator when unset)",
        )
    signed = platform.get_signed_url if (platform is not None and p.api_key) else None
    return AgentConnector(
        ws_url_for(p.base_url),
        signed_url=signed,
        open_timeout_s=p.connect_timeout_s,
        max_message_bytes=config.server.max_message_bytes,
    )
