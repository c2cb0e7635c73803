"""Which agent answers a called number: the routing table.

A call is routed from memory, never by asking the platform: :meth:`RoutingTable.route`
is a dict lookup.  The table is

* loaded from the store's ``numbers`` table at start (so it survives restarts and a
  platform outage at boot),
* replaced by :meth:`RoutingTable.sync` from the platform's phone-number list on start
  and every ``platform.sync_interval_s`` (:meth:`RoutingTable.run_periodic_sync`),
* changed at once by admin actions (:meth:`RoutingTable.apply`, :meth:`RoutingTable.remove`).

Precedence for the called number: the table (when the number is there *and* has an
agent), else the static ``[[routes]]`` from config, else ``platform.default_agent_id``.
A number's bridge-side overrides (first message, language, variables, fallback) apply
whichever of the three picked the agent.

The platform client is someone else's: :meth:`sync` takes any async callable that
returns :class:`PlatformNumber` items.  If it fails, the last known table keeps
serving and the failure is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from bridge.config import Config
from bridge.config import Route as StaticRoute
from bridge.errors import BridgeError, StoreError
from bridge.log import log_event
from bridge.store import NumberRecord, Provider, Store
from bridge.store.records import validate_number

logger = logging.getLogger("bridge.routing")

RouteSource = Literal["table", "static", "default"]


class PlatformNumber(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the platform's phone-number list, as the sync needs it."""

    number: str
    phone_number_id: str
    label: str = ""
    provider: Provider = "twilio"
    agent_id: str | None = None
    agent_name: str | None = None


Fetch = Callable[[], Awaitable[Sequence[PlatformNumber]]]


@dataclass(frozen=True)
class Route:
    """The routing decision for one call."""

    agent_id: str
    source: RouteSource
    # The number's table entry (its overrides), whichever source picked the agent.
    number: NumberRecord | None = None

    @property
    def first_message(self) -> str | None:
        return self.number.first_message if self.number else None

    @property
    def language(self) -> str | None:
        return self.number.language if self.number else None

    @property
    def dynamic_variables(self) -> dict[str, str]:
        return dict(self.number.dynamic_variables) if self.number else {}

    @property
    def fallback_number(self) -> str | None:
        return self.number.fallback_number if self.number else None

    @property
    def record(self) -> bool:
        return self.number.record if self.number else False


@dataclass(frozen=True)
class SyncResult:
    ok: bool
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: int = 0  # invalid items from the platform, logged
    persisted: bool = True  # False: serving the new table, but the store write failed
    error: str | None = None


class RoutingTable:
    """In-memory routes backed by the store.  Use from the event loop thread."""

    def __init__(
        self,
        store: Store | None = None,
        static_routes: Sequence[StaticRoute] = (),
        default_agent_id: str | None = None,
    ):
        self._store = store
        self._static = {r.number: r.agent_id for r in static_routes}
        self._default = default_agent_id
        self._table: dict[str, NumberRecord] = (
            {r.number: r for r in store.list_numbers()} if store is not None else {}
        )
        self._store_stale = False  # a persist failed: write the whole table next time
        self.last_sync_at: float | None = None  # wall time of the last successful sync
        self.last_sync_error: str | None = None

    @classmethod
    def from_config(cls, cfg: Config, store: Store | None) -> RoutingTable:
        return cls(store, cfg.routes, cfg.platform.default_agent_id)

    # -- serving ---------------------------------------------------------------------

    def route(self, to_number: str) -> Route | None:
        """The agent for a call to ``to_number``, or None if nothing routes it."""
        number = to_number.strip()
        rec = self._table.get(number)
        if rec is not None and rec.agent_id:
            return Route(rec.agent_id, "table", rec)
        static = self._static.get(number)
        if static:
            return Route(static, "static", rec)
        if self._default:
            return Route(self._default, "default", rec)
        return None

    def numbers(self) -> list[NumberRecord]:
        return sorted(self._table.values(), key=lambda r: r.number)

    def get(self, number_or_id: str) -> NumberRecord | None:
        rec = self._table.get(number_or_id)
        if rec is not None:
            return rec
        return next((r for r in self._table.values() if r.phone_number_id == number_or_id), None)

    # -- admin actions (take effect at once) -----------------------------------------

    def apply(self, rec: NumberRecord) -> NumberRecord:
        """Add or replace a number; persisted first, so a failure changes nothing.

        Raises InputError (invalid record, id clash) or StoreError.  Synchronous and
        usually sub-millisecond; it waits up to the store's busy timeout when the file
        is locked, so an async caller may prefer ``run_in_threadpool``.
        """
        if self._store is not None:
            rec = self._store.upsert_number(rec)
        else:
            rec = msgspec.structs.replace(rec, updated_at=time.time())
        self._table = {**self._table, rec.number: rec}
        log_event(logger, "routing.applied", number=rec.number, agent_id=rec.agent_id)
        return rec

    def remove(self, number_or_id: str) -> bool:
        """Remove a number (by E.164 or phone_number_id); False if it was not there."""
        rec = self.get(number_or_id)
        stored = self._store.delete_number(number_or_id) if self._store is not None else False
        if rec is None:
            return stored
        self._table = {k: v for k, v in self._table.items() if k != rec.number}
        log_event(logger, "routing.removed", number=rec.number)
        return True

    # -- changes another instance made (bridge.store.bus): memory only ---------------

    def load(self, rec: NumberRecord) -> None:
        """Serve ``rec`` as the store has it (another instance wrote it)."""
        self._table = {**self._table, rec.number: rec}
        log_event(logger, "routing.reloaded", number=rec.number, agent_id=rec.agent_id)

    def forget(self, number_or_id: str) -> bool:
        """Stop serving a number the store no longer has; False if it was not here."""
        rec = self.get(number_or_id)
        if rec is None:
            return False
        self._table = {k: v for k, v in self._table.items() if k != rec.number}
        log_event(logger, "routing.forgotten", number=rec.number)
        return True

    def replace_all(self, records: Sequence[NumberRecord]) -> None:
        """Serve exactly ``records`` (the store's whole table)."""
        self._table = {r.number: r for r in records}
        log_event(logger, "routing.reloaded_all", numbers=len(records))

    # -- sync from the platform ------------------------------------------------------

    async def sync(self, fetch: Fetch) -> SyncResult:
        """Replace the platform-owned fields from ``fetch()``; never raises for its failure.

        Bridge-side overrides are kept.  Numbers gone from the platform are removed.
        Entries an admin action changed while the fetch was in flight are left as they
        are (the fetched list may predate the action).
        """
        started = time.time()
        try:
            items = await fetch()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # any failure of someone else's client: keep serving
            self.last_sync_error = f"{type(e).__name__}: {e}"
            log_event(
                logger,
                "routing.sync_failed",
                level=logging.ERROR,
                error=self.last_sync_error,
                serving=len(self._table),
                note="routing from the last known table",
            )
            return SyncResult(ok=False, error=self.last_sync_error)

        table = dict(self._table)
        upserts: list[NumberRecord] = []
        seen: set[str] = set()
        added = updated = unchanged = skipped = 0
        for item in items:
            rec = _merge(item, table, started)
            if rec is None:
                skipped += 1
                continue
            if rec.number in seen:
                skipped += 1
                log_event(
                    logger, "routing.sync_duplicate", level=logging.WARNING, number=rec.number
                )
                continue
            seen.add(rec.number)
            old = table.get(rec.number)
            if old is None:
                added += 1
            elif old == rec:
                unchanged += 1
                continue
            else:
                updated += 1
            table[rec.number] = rec
            upserts.append(rec)
        gone = [n for n, r in table.items() if n not in seen and r.updated_at < started]
        for n in gone:
            del table[n]
        self._table = table
        self.last_sync_at, self.last_sync_error = time.time(), None

        persisted = await self._persist(upserts, gone)
        log_event(
            logger,
            "routing.synced",
            numbers=len(table),
            added=added,
            updated=updated,
            removed=len(gone),
            skipped=skipped,
            persisted=persisted,
        )
        return SyncResult(
            ok=True,
            added=added,
            updated=updated,
            removed=len(gone),
            unchanged=unchanged,
            skipped=skipped,
            persisted=persisted,
        )

    async def run_periodic_sync(
        self, fetch: Fetch, interval_s: float, stop_event: asyncio.Event
    ) -> None:
        """Sync now, then every ``interval_s`` until ``stop_event`` (0 = only once)."""
        while not stop_event.is_set():
            await self.sync(fetch)
            if interval_s <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), interval_s)

    async def _persist(self, upserts: list[NumberRecord], gone: list[str]) -> bool:
        store = self._store
        if store is None:
            return True
        if self._store_stale:
            upserts = self.numbers()
        current = set(self._table)

        def write() -> None:
            deletes = list(gone)
            if self._store_stale:
                deletes = [r.number for r in store.list_numbers() if r.number not in current]
            store.sync_numbers(upserts, deletes)

        try:
            # Off the loop: a locked database must not stall calls being routed.
            await asyncio.to_thread(write)
        except StoreError as e:
            self._store_stale = True
            log_event(
                logger,
                "routing.persist_failed",
                level=logging.ERROR,
                error=str(e),
                note="serving the synced table from memory; will write it on the next sync",
            )
            return False
        self._store_stale = False
        return True


def _merge(item: object, table: dict[str, NumberRecord], started: float) -> NumberRecord | None:
    """The table entry for a fetched item, or None (logged) if the item is unusable."""
    try:
        raw = msgspec.structs.asdict(item) if isinstance(item, msgspec.Struct) else item
        p = msgspec.convert(raw, PlatformNumber)
        old = table.get(p.number)
        fields: dict[str, Any] = {
            "phone_number_id": p.phone_number_id,
            "label": p.label,
            "provider": p.provider,
            "agent_id": p.agent_id,
            "agent_name": p.agent_name,
        }
        if old is None:
            return validate_number(NumberRecord(number=p.number, updated_at=started, **fields))
        if old.updated_at >= started:
            return old  # changed by an admin action during the fetch: newer than the list
        rec = msgspec.structs.replace(old, **fields)
        if rec == old:
            return old
        return validate_number(msgspec.structs.replace(rec, updated_at=started))
    except (msgspec.ValidationError, BridgeError) as e:
        log_event(
            logger,
            "routing.sync_item_invalid",
            level=logging.WARNING,
            item=repr(item)[:200],
            error=str(e),
        )
        return None
