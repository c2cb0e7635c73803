"""This instance among the others sharing its store: heartbeats, the sweep, the bus.

:class:`Cluster` runs for the app's lifetime (:meth:`Cluster.lifespan`):

* registers this instance, then every ``store.instance_heartbeat_s`` heartbeats (with
  its live-call count) and sweeps the instances silent past ``store.instance_grace_s``
  (:mod:`bridge.store.instances`); marks it stopped at a clean shutdown;
* follows the event bus (:mod:`bridge.store.bus`) and acts on what other instances
  publish: a **routing change** is re-read from the store into this instance's routing
  table (so its next call uses the new agent without asking the platform), a **hang-up**
  ends the call at once if it is live here (end reason ``admin_hangup``).

All store work runs in threads; nothing here is on a call's path.  When the store fails,
heartbeats and the bus log it and retry on their next round; calls go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

from bridge import __version__
from bridge.call.actions import Transfer
from bridge.call.registry import LiveCalls
from bridge.config import Config
from bridge.errors import StoreError
from bridge.log import log_event
from bridge.routing import RoutingTable
from bridge.store import Store
from bridge.store.bus import (
    CALL_HANGUP,
    CALL_TRANSFER,
    ROUTING_CHANGED,
    CallHangup,
    CallTransfer,
    Event,
    EventBus,
    RoutingChanged,
)
from bridge.store.instances import Instances
from bridge.store.store import is_postgres

logger = logging.getLogger("bridge.cluster")


def instance_id(config: Config) -> str:
    """``server.instance_id``, else the host name (a pod's name in Kubernetes)."""
    return config.server.instance_id or socket.gethostname()


class Cluster:
    """The bus and the instance registry of one bridge process (see the module doc)."""

    def __init__(self, config: Config, store: Store, routing: RoutingTable, calls: LiveCalls):
        self._store = store
        self._routing = routing
        self._calls = calls
        self._heartbeat_s = config.store.instance_heartbeat_s
        self.id = store.instance
        self.instances = Instances(
            store,
            instance_id=self.id,
            grace_s=config.store.instance_grace_s,
            version=__version__,
            url=config.public_url,
        )
        db = config.store.db
        self.bus = EventBus(
            store,
            origin=self.id,
            poll_interval_s=config.store.bus_poll_interval_s,
            retention_s=config.store.bus_retention_s,
            listen_dsn=db if is_postgres(db) and store.postgres else None,
        )
        self.bus.subscribe(ROUTING_CHANGED, RoutingChanged, self._on_routing)
        self.bus.subscribe(CALL_HANGUP, CallHangup, self._on_hangup)
        self.bus.subscribe(CALL_TRANSFER, CallTransfer, self._on_transfer)

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        try:
            await asyncio.to_thread(self.instances.register)
            await self.bus.start()
        except StoreError as e:
            # The store is down at start: calls can still flow (records queue); this
            # instance joins the others when the store is back (the heartbeat retries).
            log_event(logger, "cluster.start_failed", logging.ERROR, error=str(e))
        beat = asyncio.create_task(self._beat(), name="instance-heartbeat")
        try:
            yield
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await self.bus.stop()
            with contextlib.suppress(StoreError):
                await asyncio.to_thread(self.instances.stop)

    async def _beat(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                if not self.bus.started:
                    await asyncio.to_thread(self.instances.register)
                    await self.bus.start()
                await asyncio.to_thread(self.instances.heartbeat, len(self._calls))
                await asyncio.to_thread(self.instances.sweep)
            except StoreError as e:
                if not failing:
                    log_event(logger, "cluster.heartbeat_failed", logging.WARNING, error=str(e))
                failing = True
                continue
            if failing:
                log_event(logger, "cluster.heartbeat_recovered")
            failing = False

    # -- what other instances publish --------------------------------------------------

    async def _on_routing(self, change: RoutingChanged, event: Event) -> None:
        if change.everything:
            self._routing.replace_all(await asyncio.to_thread(self._store.list_numbers))
            return
        for key in change.keys:
            rec = await asyncio.to_thread(self._store.get_number, key)
            if rec is not None:
                self._routing.load(rec)
            else:
                self._routing.forget(key)

    async def _on_transfer(self, order: CallTransfer, event: Event) -> None:
        to = Transfer(order.number, order.caller_id, order.timeout_s)
        if self._calls.transfer(order.call_sid, to):
            log_event(
                logger,
                "cluster.call_transfer",
                call_sid=order.call_sid,
                to=order.number,
                requested_by=event.origin,
            )

    async def _on_hangup(self, order: CallHangup, event: Event) -> None:
        if self._calls.hangup(order.call_sid):
            log_event(
                logger, "cluster.call_hangup", call_sid=order.call_sid, requested_by=event.origin
            )
