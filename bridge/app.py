"""The bridge's ASGI application, wired in one place.

:func:`build_bridge` builds every part of a running bridge once, in dependency order,
and returns them frozen (:class:`Bridge`); nothing is patched in afterwards:

1. what the caller did not pass in: metrics, the store, the platform client, the agent
   connector, the routing table, the Twilio REST client (its session opens on first
   use; the app closes it);
2. the webhook's **admission chain**, one object asked in this order: the drain
   (:class:`~bridge.ops.drain.Drain`, refuses while shutting down), the ``admission``
   passed in (e.g. a per-number rule; admit-all by default), then the telephony
   concurrency caps (:class:`~bridge.telephony.capacity.CapacityAdmission`, last because
   a call it admits takes a slot).  The caps alone are the **stream-start admission**
   (:mod:`bridge.call.stream_gate`: never the drain, a call admitted before it may
   start);
3. the **tools** (the defaults or those passed in, plus the telephony client tools), the
   per-call **watcher** and the **keypad** handler (the telephony features' unless the
   caller passes its own);
4. the frozen :class:`~bridge.call.services.CallServices`, then what serves beside the
   calls: operations (drain, readiness, metrics), provisioning (admin API), the dialer.

:func:`create_app` turns a :class:`Bridge` into the Starlette app: one route list, one
lifespan.  Everything shared lives on ``app.state``:

=====================  ==================================================================
``bridge``             the :class:`Bridge` itself (all of the below, and provisioning)
``services``           :class:`~bridge.call.services.CallServices`: what calls use
``config``             the frozen :class:`~bridge.config.Config`
``store``              :class:`~bridge.store.Store` (call records, numbers)
``routing``            :class:`~bridge.routing.RoutingTable`
``calls``              :class:`~bridge.call.registry.LiveCalls` (``hangup(call_sid)``)
``metrics``            :class:`~bridge.metrics.Metrics`
``platform``           :class:`~bridge.platform.client.PlatformClient` or None
``telephony``          :class:`~bridge.telephony.features.Telephony` (caps, live features)
``ops``                :class:`~bridge.ops.service.Operations` (drain, readiness)
``provisioning``       :class:`~bridge.admin.service.Provisioning` (numbers, agents)
=====================  ==================================================================

Routes are one list: :func:`~bridge.call.endpoints.twilio_routes`, the telephony,
console, admin and ops (``/healthz``, ``/readyz``, ``/metrics``) routes, plus
``extra_routes``.  Features with background work pass ``lifespans``: async context
managers entered at start-up, in order, and left at shutdown in reverse.  Whatever
``build_bridge`` builds itself (the store, the platform client, the Twilio REST client)
the app closes; what the caller passes in is the caller's to close.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from bridge.admin.routes import admin_routes
from bridge.admin.service import Provisioning, routing_sync
from bridge.call.admission import Admission
from bridge.call.endpoints import twilio_routes
from bridge.call.registry import LiveCalls
from bridge.call.services import CallServices, CallWatch, KeypadHandler
from bridge.call.session import SessionSettings
from bridge.call.tools import ToolRegistry, default_tools
from bridge.config import Config, ws_url_for
from bridge.console import console_routes
from bridge.convai.client import AgentConnector
from bridge.errors import ConfigError
from bridge.log import log_event
from bridge.metrics import Metrics
from bridge.ops.cluster import Cluster
from bridge.ops.drain import Drain
from bridge.ops.health import security_warnings
from bridge.ops.service import Operations
from bridge.platform.client import PlatformClient
from bridge.platform.reachability import UpstreamHealth
from bridge.recording.retention import retention_cleanup
from bridge.routing import RoutingTable
from bridge.store import Store
from bridge.telephony.dialer import Dialer
from bridge.telephony.endpoints import TelephonyEndpoints
from bridge.telephony.features import Telephony
from bridge.telephony.shared_limits import SharedLimits
from bridge.telephony.shared_limits import enabled as shared_limits_enabled
from bridge.twilio.rest import TwilioRest
from bridge.webhooks.admin import webhook_admin_routes
from bridge.webhooks.delivery import WebhookDispatcher
from bridge.webhooks.extras import call_extras

logger = logging.getLogger("bridge.app")

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Bridge:
    """The parts of a running bridge, built once by :func:`build_bridge`."""

    config: Config
    services: CallServices
    telephony: Telephony
    ops: Operations
    provisioning: Provisioning
    dialer: Dialer
    platform: PlatformClient | None
    # Post-call webhooks (None without webhooks.urls); run by the app's lifespan.
    webhooks: WebhookDispatcher | None
    # What build_bridge made itself, closed (in reverse) when the app stops.
    owned: contextlib.AsyncExitStack = field(compare=False, repr=False)
    # This instance among those sharing the store (heartbeats, sweep, event bus).
    cluster: Cluster | None = None
    # Caps, stream-token single use and outbound rates held in the store for the whole
    # deployment (telephony.shared_limits); None: per process.
    shared_limits: SharedLimits | None = None


def build_bridge(
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
    watch: CallWatch | None = None,
    on_keypad: KeypadHandler | None = None,
) -> Bridge:
    """Every part of a bridge, wired (see the module docstring for the order).

    ``store=None`` opens ``config.store.db``; the platform client and the agent connector
    default to ``config.platform`` (``base_url`` must then be set).  ``watch`` and
    ``on_keypad`` replace the telephony features' per-call hooks (tests observe calls
    with them).
    """
    owned = contextlib.AsyncExitStack()  # what we build, the app closes at shutdown
    metrics = metrics if metrics is not None else Metrics()
    if store is None:
        store = Store.from_config(
            config.store, metrics.registry, instance=config.server.instance_id
        )
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
    twilio_rest = TwilioRest.from_config(config.twilio)
    if twilio_rest is not None:
        owned.push_async_callback(twilio_rest.aclose)

    webhooks = (
        WebhookDispatcher(
            config.webhooks,
            store,
            registry=metrics.registry,
            extras=call_extras(
                store, config.recording.directory(config.store.db), config.public_url
            ),
        )
        if config.webhooks.urls
        else None
    )
    calls = LiveCalls()
    # The admission chain: drain → the admission passed in → the concurrency caps.
    drain = Drain(config.ops, calls, metrics, inner=admission)
    telephony = Telephony(config.telephony, calls, store, admission=drain)
    tools = tools if tools is not None else default_tools()
    telephony.tools.register(tools)
    # Deployment-wide limits replace the per-process caps in both admissions (these
    # then serve only as its fallback while the store does not answer).
    shared = (
        SharedLimits(config, store, telephony.capacity, calls)
        if shared_limits_enabled(config)
        else None
    )
    if shared is not None:
        calls.on_removed = shared.release

    services = CallServices(
        config=config,
        routing=routing if routing is not None else RoutingTable.from_config(config, store),
        connector=connector,
        settings=settings or SessionSettings.from_config(config),
        store=store,
        twilio_rest=twilio_rest,
        tools=tools,
        calls=calls,
        admission=shared or telephony.capacity,
        stream_admission=shared or telephony.capacity,
        reservation=shared,
        stream_claim=shared,
        metrics=metrics,
        upstream=UpstreamHealth(),
        on_keypad=on_keypad if on_keypad is not None else telephony.on_keypad,
        watch=watch if watch is not None else telephony.watch,
        on_call_ended=webhooks.call_ended if webhooks is not None else None,
    )
    cluster = Cluster(config, store, services.routing, calls)
    return Bridge(
        config=config,
        services=services,
        telephony=telephony,
        ops=Operations(config.ops, services, drain, platform),
        provisioning=Provisioning(
            services,
            platform,
            bus=cluster.bus,
            instances=cluster.instances,
            transfer_order=telephony.tools.order_for,
        ),
        dialer=Dialer(services, telephony, shared=shared),
        platform=platform,
        webhooks=webhooks,
        owned=owned,
        cluster=cluster,
        shared_limits=shared,
    )


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
    watch: CallWatch | None = None,
    on_keypad: KeypadHandler | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    lifespans: Sequence[Lifespan] = (),
) -> Starlette:
    """The bridge app: :func:`build_bridge` (same arguments), served by :func:`app_for`."""
    bridge = build_bridge(
        config,
        store=store,
        routing=routing,
        platform=platform,
        connector=connector,
        tools=tools,
        admission=admission,
        metrics=metrics,
        settings=settings,
        watch=watch,
        on_keypad=on_keypad,
    )
    return app_for(bridge, extra_routes=extra_routes, lifespans=lifespans)


def app_for(
    bridge: Bridge,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    lifespans: Sequence[Lifespan] = (),
) -> Starlette:
    """The Starlette app serving ``bridge``; it closes what ``bridge`` owns at shutdown."""
    config, services, ops = bridge.config, bridge.services, bridge.ops
    metrics, platform = services.metrics, bridge.platform

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log_event(
            logger,
            "bridge.started",
            public_url=config.public_url,
            stream_url=services.stream_url,
            agent_ws=services.connector.ws_base_url,
            signed_urls=services.connector.uses_signed_urls,
            signatures_enforced=config.twilio.signatures_enforced,
            twilio_rest=services.twilio_rest is not None,
        )
        metrics.twilio_signatures_enforced.set(1 if config.twilio.signatures_enforced else 0)
        for name, problem in security_warnings(config.twilio).items():
            log_event(logger, "bridge.insecure", logging.WARNING, setting=name, problem=problem)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if bridge.cluster is not None:
                    await stack.enter_async_context(bridge.cluster.lifespan())
                if platform is not None:
                    await stack.enter_async_context(
                        routing_sync(services.routing, platform, config.platform.sync_interval_s)
                    )
                await stack.enter_async_context(ops.lifespan(app))
                await stack.enter_async_context(
                    retention_cleanup(config.recording, config.store.db, metrics)
                )
                if bridge.webhooks is not None:
                    await stack.enter_async_context(bridge.webhooks.running())
                if bridge.shared_limits is not None:
                    await stack.enter_async_context(bridge.shared_limits.running())
                for enter in lifespans:
                    await stack.enter_async_context(enter(app))
                yield
                # The graceful drain runs before this point, while the server still
                # serves: ``bridge serve`` awaits ``app.state.ops.drain.run()`` on
                # SIGTERM and only then stops uvicorn (see bridge.ops.drain).
        finally:
            await bridge.owned.aclose()
            log_event(logger, "bridge.stopped", live_calls=len(services.calls))

    phone = TelephonyEndpoints(bridge.telephony, bridge.dialer)
    admin_extra = phone.admin_routes()
    if services.store is not None:
        wake = bridge.webhooks.wake if bridge.webhooks is not None else None
        admin_extra += webhook_admin_routes(services.store, wake)
    admin = admin_routes(bridge.provisioning, config.admin, metrics, admin_extra)
    # The operator console (/admin/ui), only with an admin token; before the /admin mount.
    console = console_routes(config, bridge.provisioning, services.calls, ops, metrics)
    app = Starlette(
        routes=[
            *twilio_routes(),
            *phone.twilio_routes(),
            *console,
            *admin,
            *ops.routes(),
            *extra_routes,
        ],
        lifespan=lifespan,
    )
    state = app.state
    state.bridge = bridge
    state.services = services
    state.config = config
    state.store = services.store
    state.routing = services.routing
    state.calls = services.calls
    state.metrics = metrics
    state.platform = platform
    state.telephony = bridge.telephony
    state.ops = ops
    state.provisioning = bridge.provisioning
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
