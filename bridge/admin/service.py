"""Provisioning: the admin operations on numbers, agents and calls, as plain async methods.

Each operation orchestrates up to four parties: the Agents Platform REST API
(:class:`~bridge.platform.client.PlatformClient`), Twilio REST
(:class:`~bridge.twilio.rest.TwilioRest`), the routing table and the store behind it.
The HTTP layer (:mod:`bridge.admin.routes`) only decodes requests and encodes answers.

**All or nothing.**  A multi-step operation runs its steps through a :class:`Saga`:
each step that changes something registers how to undo it; when a later step fails,
the steps done so far are undone in reverse order and a
:class:`~bridge.errors.PartialFailure` says which step failed, what was undone and what
(if an undo failed too, or a step cannot be undone) is still done.  Read-only checks
(agent exists, number not yet imported, number in the Twilio account) run before the
first change, so most bad requests change nothing at all.

Import order: Twilio lookup (read) → platform import → assign agent → point the Twilio
number at the bridge → routing table + store.  Delete order: routing table → restore
Twilio (if asked) → platform delete last, because it is the one step that cannot be
undone (a re-import gets a new ``phone_number_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from bridge.admin.agent_template import BRIDGE_CLIENT_TOOLS, telephony_agent
from bridge.admin.models import (
    AgentInfo,
    CallTranscript,
    CreateAgent,
    DeleteResult,
    HangupResult,
    ImportNumber,
    ImportResult,
    TransferResult,
    TwilioSetup,
    UpdateNumber,
)
from bridge.call.actions import Transfer, to_twiml
from bridge.call.services import CallServices
from bridge.errors import (
    BridgeError,
    ConfigError,
    InputError,
    PartialFailure,
    PlatformApiError,
    StoreError,
)
from bridge.http import INBOUND_PATH, STATUS_PATH
from bridge.log import log_event
from bridge.platform.agents import ClientToolConfig
from bridge.platform.client import PlatformClient
from bridge.platform.phone_numbers import (
    CreateTwilioPhoneNumberRequest,
    PhoneNumber,
    TwilioPhoneNumber,
)
from bridge.recording.call import recording_path
from bridge.routing import PlatformNumber, RoutingTable
from bridge.store import CallPage, CallRecord, NumberRecord, Store
from bridge.store.bus import CALL_HANGUP, CALL_TRANSFER, CallHangup, CallTransfer, EventBus
from bridge.store.instances import InstanceInfo, Instances
from bridge.twilio.rest import IncomingNumber, TwilioRest

logger = logging.getLogger("bridge.admin.service")

# A hang-up of a call another instance handles waits this long for that instance to end
# it (the bus reaches it within milliseconds on PostgreSQL, a poll interval on SQLite)
# before ending the phone leg over Twilio REST itself.
OWNER_WAIT_S = 1.5

T = TypeVar("T")


class Saga:
    """Steps with undo actions; on failure, undo the done steps in reverse order."""

    def __init__(self, operation: str, **context: Any):
        self._operation = operation
        self._context = context
        self._done: list[tuple[str, Callable[[], Awaitable[object]] | None]] = []

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[T]],
        undo: Callable[[T], Awaitable[object]] | None = None,
    ) -> T:
        """Run ``action``; remember ``undo(result)`` (None: the step cannot be undone)."""
        try:
            result = await action()
        except BridgeError as e:
            raise await self._fail(name, e) from e
        except Exception as e:
            # Not a deliberate error: still undo what was done, then let it surface.
            await self._fail(name, BridgeError(f"{type(e).__name__}: {e}"))
            raise
        self._done.append((name, (lambda: undo(result)) if undo is not None else None))
        return result

    async def _fail(self, step: str, cause: BridgeError) -> BridgeError:
        if not self._done:
            return cause  # nothing changed yet: the step's own error says it all
        undone: list[str] = []
        left: list[str] = []
        for name, undo in reversed(self._done):
            if undo is None:
                left.append(name)
                continue
            try:
                await undo()
            except Exception as e:  # an undo that fails leaves its step done: say so
                left.append(name)
                log_event(
                    logger,
                    "provisioning.undo_failed",
                    level=logging.ERROR,
                    operation=self._operation,
                    step=name,
                    error=f"{type(e).__name__}: {e}",
                    **self._context,
                )
            else:
                undone.append(name)
        log_event(
            logger,
            "provisioning.rolled_back",
            level=logging.WARNING if not left else logging.ERROR,
            operation=self._operation,
            failed_step=step,
            error=str(cause),
            undone=undone,
            left_done=left,
            **self._context,
        )
        return PartialFailure(step, cause, undone, left)


class Provisioning:
    """The admin operations of one running bridge, used from its event loop.

    ``services`` are the app's call services (routing table, store, live calls, Twilio
    REST client, public URL); ``platform`` the Agents Platform client.
    """

    def __init__(
        self,
        services: CallServices,
        platform: PlatformClient | None,
        *,
        client_tools: tuple[ClientToolConfig, ...] = BRIDGE_CLIENT_TOOLS,
        bus: EventBus | None = None,
        instances: Instances | None = None,
        transfer_order: Callable[[str], Transfer] | None = None,
    ):
        self._services = services
        # A transfer target checked against telephony.transfer_allow, as the agent's
        # transfer tool checks it (bridge.telephony.tools); None: admin transfers refused.
        self._transfer_order = transfer_order
        # The other instances sharing the store (None: this process alone).
        self._bus = bus
        self._instances = instances
        self._routing = services.routing
        self._platform_client = platform
        self._client_tools = client_tools
        # Admin changes to numbers one at a time: two imports of the same number must
        # not both pass the duplicate check.
        self._numbers_lock = asyncio.Lock()

    @property
    def _platform(self) -> PlatformClient:
        if self._platform_client is None:
            raise ConfigError("platform.base_url", "is not set", "the Agents Platform URL")
        return self._platform_client

    @property
    def _twilio(self) -> TwilioRest | None:
        # Created in the app's lifespan, so read when needed.
        return self._services.twilio_rest

    @property
    def _store(self) -> Store:
        if self._services.store is None:
            raise StoreError("no store is configured: call records are not kept")
        return self._services.store

    @property
    def voice_url(self) -> str:
        return self._services.public(INBOUND_PATH)

    @property
    def status_callback(self) -> str:
        return self._services.public(STATUS_PATH)

    # ------------------------------------------------------------------ numbers

    def list_numbers(self) -> list[NumberRecord]:
        return self._routing.numbers()

    def get_number(self, number_or_id: str) -> NumberRecord:
        rec = self._routing.get(number_or_id)
        if rec is None:
            raise InputError("id", f"no provisioned number {number_or_id!r}", status=404)
        return rec

    async def import_number(self, req: ImportNumber) -> ImportResult:
        async with self._numbers_lock:
            return await self._import_number(req)

    async def _import_number(self, req: ImportNumber) -> ImportResult:
        sid, token = self._twilio_credentials()
        # Read-only checks first: a bad request changes nothing.
        existing = self._routing.get(req.number)
        if existing is not None:
            raise InputError(
                "number",
                f"{req.number} is already provisioned (phone_number_id {existing.phone_number_id})",
                status=409,
            )
        on_platform = await self._platform_number(req.number)
        if on_platform is not None:
            raise InputError(
                "number",
                f"{req.number} is already imported on the platform "
                f"(phone_number_id {on_platform.phone_number_id}); it joins this bridge's "
                "table on the next sync, or delete it there first",
                status=409,
            )
        agent_name = await self._agent_name(req.agent_id) if req.agent_id else None
        incoming = await self._incoming_number(req) if req.configure_twilio else None

        saga = Saga("numbers.import", number=req.number)
        phone_number_id = await saga.step(
            "platform.import",
            lambda: self._platform.create_phone_number(
                CreateTwilioPhoneNumberRequest(
                    phone_number=req.number, label=req.label or req.number, sid=sid, token=token
                )
            ),
            undo=self._platform.delete_phone_number,
        )
        if req.agent_id:
            agent_id = req.agent_id
            await saga.step(
                "platform.assign_agent",
                lambda: self._platform.assign_agent(phone_number_id, agent_id),
                undo=lambda _: self._platform.assign_agent(phone_number_id, None),
            )
        setup: TwilioSetup | None = None
        if incoming is not None:
            configured = await saga.step(
                "twilio.configure",
                lambda: self._point_at_bridge(incoming.sid),
                undo=lambda _: self._restore(incoming),
            )
            setup = TwilioSetup(
                number_sid=configured.sid,
                voice_url=configured.voice_url,
                status_callback=configured.status_callback,
                previous_voice_url=incoming.voice_url,
                previous_status_callback=incoming.status_callback,
            )
        rec = NumberRecord(
            number=req.number,
            phone_number_id=phone_number_id,
            label=req.label or req.number,
            provider="twilio",
            agent_id=req.agent_id,
            agent_name=agent_name,
            first_message=req.first_message,
            language=req.language,
            dynamic_variables=dict(req.dynamic_variables),
            fallback_number=req.fallback_number,
            record=req.record,
            twilio_number_sid=incoming.sid if incoming is not None else req.twilio_number_sid,
        )
        stored = await saga.step("routing.apply", lambda: self._apply(rec))
        log_event(
            logger,
            "provisioning.number_imported",
            number=stored.number,
            phone_number_id=phone_number_id,
            agent_id=stored.agent_id,
            twilio_configured=setup is not None,
        )
        return ImportResult(number=stored, twilio=setup)

    async def update_number(self, number_or_id: str, req: UpdateNumber) -> NumberRecord:
        async with self._numbers_lock:
            rec = self.get_number(number_or_id)
            changes = req.changes()
            if not changes:
                raise InputError(
                    "body",
                    "no field to change; give one or more of "
                    + ", ".join(UpdateNumber.__struct_fields__),
                )
            saga = Saga("numbers.update", number=rec.number)
            if "agent_id" in changes and changes["agent_id"] != rec.agent_id:
                agent_id: str | None = changes["agent_id"]
                changes["agent_name"] = await self._agent_name(agent_id) if agent_id else None
                if rec.phone_number_id is not None:
                    pnid = rec.phone_number_id
                    await saga.step(
                        "platform.assign_agent",
                        lambda: self._platform.assign_agent(pnid, agent_id),
                        undo=lambda _: self._platform.assign_agent(pnid, rec.agent_id),
                    )
            new = msgspec.structs.replace(rec, **changes)
            stored = await saga.step("routing.apply", lambda: self._apply(new))
            log_event(
                logger,
                "provisioning.number_updated",
                number=stored.number,
                fields=sorted(changes),
                agent_id=stored.agent_id,
            )
            return stored

    async def delete_number(
        self, number_or_id: str, *, restore_voice_url: str | None = None
    ) -> DeleteResult:
        """Remove a number from this bridge and the platform.

        With ``restore_voice_url``, the Twilio number's voice URL is set to it (and its
        status callback cleared) so calls stop coming to this bridge.
        """
        async with self._numbers_lock:
            rec = self.get_number(number_or_id)
            if restore_voice_url is not None and self._twilio is None:
                raise ConfigError(
                    "twilio.auth_token",
                    "is not set; restoring the Twilio voice URL needs Twilio credentials",
                    "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
                )
            incoming = await self._incoming_for(rec) if restore_voice_url is not None else None
            saga = Saga("numbers.delete", number=rec.number)
            await saga.step(
                "routing.remove", lambda: self._remove(rec), undo=lambda _: self._apply(rec)
            )
            setup: TwilioSetup | None = None
            if restore_voice_url is not None and incoming is not None:
                restored = await saga.step(
                    "twilio.restore",
                    lambda: self._set_twilio(incoming.sid, restore_voice_url, ""),
                    undo=lambda _: self._restore(incoming),
                )
                setup = TwilioSetup(
                    number_sid=restored.sid,
                    voice_url=restored.voice_url,
                    status_callback=restored.status_callback,
                    previous_voice_url=incoming.voice_url,
                    previous_status_callback=incoming.status_callback,
                )
            deleted = False
            if rec.phone_number_id is not None:
                pnid = rec.phone_number_id
                deleted = await saga.step("platform.delete", lambda: self._platform_delete(pnid))
            log_event(
                logger,
                "provisioning.number_deleted",
                number=rec.number,
                phone_number_id=rec.phone_number_id,
                platform_deleted=deleted,
                twilio_restored=setup is not None,
            )
            return DeleteResult(
                number=rec.number,
                phone_number_id=rec.phone_number_id,
                platform_deleted=deleted,
                twilio=setup,
            )

    # ------------------------------------------------------------------ agents

    async def create_agent(self, req: CreateAgent) -> AgentInfo:
        agent_id = await self._platform.create_agent(telephony_agent(req, self._client_tools))
        log_event(logger, "provisioning.agent_created", agent_id=agent_id, name=req.name)
        return AgentInfo(agent_id=agent_id, name=req.name)

    async def list_agents(self) -> list[AgentInfo]:
        return [
            AgentInfo(agent_id=a.agent_id, name=a.name, created_at=float(a.created_at_unix_secs))
            async for a in self._platform.iter_agents(page_size=100)
        ]

    # ------------------------------------------------------------------ calls

    async def list_calls(
        self,
        *,
        live: bool | None = None,
        number: str | None = None,
        agent_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> CallPage:
        return await asyncio.to_thread(
            self._store.list_calls,
            live=live,
            number=number,
            agent_id=agent_id,
            limit=limit,
            cursor=cursor,
        )

    async def get_call(self, call_sid: str) -> CallRecord:
        rec = await asyncio.to_thread(self._store.get_call, call_sid)
        if rec is None:
            raise InputError("call_sid", f"no call {call_sid!r} is recorded", status=404)
        return rec

    def recording_file(self, call_sid: str) -> Path:
        """The WAV file of ``call_sid``'s recording (bridge.recording); 404 when none."""
        cfg = self._services.config
        path = recording_path(cfg.recording.directory(cfg.store.db), call_sid)
        if path is None or not path.is_file():
            raise InputError("call_sid", f"no recording of call {call_sid!r}", status=404)
        return path

    async def get_transcript(self, call_sid: str) -> CallTranscript:
        rec = await self.get_call(call_sid)
        return CallTranscript(
            call_sid=rec.call_sid, status=rec.status, entries=rec.transcript, latency=rec.latency
        )

    async def hangup(self, call_sid: str) -> HangupResult:
        """End a live call, whichever instance handles it.

        Here: at once.  On another live instance: a ``call.hangup`` event on the bus
        makes it end the call (``admin_hangup``, its agent socket closed at once); the
        phone leg is then ended over Twilio REST when credentials are configured (a
        no-op if the owner did it already), which also covers a call no live instance
        handles.  409 when neither can reach the call.
        """
        if self._services.calls.hangup(call_sid):
            log_event(logger, "provisioning.call_hangup", call_sid=call_sid)
            return HangupResult(call_sid=call_sid)
        rec = await asyncio.to_thread(self._store.get_call, call_sid)
        if rec is None:
            raise InputError("call_sid", f"no call {call_sid!r} is recorded", status=404)
        owner = await self._live_owner(rec) if rec.live else None
        if owner is not None and self._bus is not None:
            await self._bus.publish(CALL_HANGUP, CallHangup(call_sid=call_sid, instance=owner))
            await self._wait_ended(call_sid, OWNER_WAIT_S)
        phone_ended = False
        if rec.live and self._twilio is not None:
            phone_ended = await self._twilio.hangup(call_sid)
        if owner is None and not phone_ended:
            raise InputError(
                "call_sid",
                f"call {call_sid} is not live on this bridge or any other (status {rec.status})",
                status=409,
            )
        log_event(
            logger,
            "provisioning.call_hangup",
            call_sid=call_sid,
            instance=owner,
            phone_leg_over_rest=phone_ended,
        )
        return HangupResult(call_sid=call_sid)

    async def transfer(self, call_sid: str, to: str) -> TransferResult:
        """Hand a live call to ``to`` (E.164 or SIP URI), whichever instance handles it.

        ``to`` must match ``telephony.transfer_allow``, as the agent's transfer tool must
        (403 otherwise: a leaked admin token must not dial anywhere).  Here: the stream
        ends at once with the transfer.  On another live instance: a ``call.transfer``
        event makes its owner do the same.  With no live owner, Twilio REST redirects the
        call to the ``<Dial>`` when credentials are configured; 409 when neither can.
        """
        if self._transfer_order is None:
            raise InputError("to", "transfers are not available on this bridge", status=403)
        order = self._transfer_order(to)
        if self._services.calls.transfer(call_sid, order):
            log_event(logger, "provisioning.call_transfer", call_sid=call_sid, to=order.number)
            return TransferResult(call_sid=call_sid, to=order.number)
        rec = await asyncio.to_thread(self._store.get_call, call_sid)
        if rec is None:
            raise InputError("call_sid", f"no call {call_sid!r} is recorded", status=404)
        owner = await self._live_owner(rec) if rec.live else None
        if owner is not None and self._bus is not None:
            await self._bus.publish(
                CALL_TRANSFER,
                CallTransfer(
                    call_sid=call_sid,
                    number=order.number,
                    caller_id=order.caller_id,
                    timeout_s=order.timeout_s,
                    instance=owner,
                ),
            )
        elif (
            rec.live
            and self._twilio is not None
            and await self._twilio.redirect(call_sid, to_twiml(order))
        ):
            owner = None
        else:
            raise InputError(
                "call_sid",
                f"call {call_sid} is not live on this bridge or any other (status {rec.status})",
                status=409,
            )
        log_event(
            logger, "provisioning.call_transfer", call_sid=call_sid, to=order.number, instance=owner
        )
        return TransferResult(call_sid=call_sid, to=order.number)

    async def _live_owner(self, rec: CallRecord) -> str | None:
        """The other, live instance handling ``rec``'s stream, if any."""
        inst, me = self._instances, self._services.store
        if rec.instance is None or inst is None or me is None or rec.instance == me.instance:
            return None
        return rec.instance if await asyncio.to_thread(inst.alive, rec.instance) else None

    async def _wait_ended(self, call_sid: str, timeout_s: float) -> bool:
        """Until the call's record is no longer live (its owner ended it), bounded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            rec = await asyncio.to_thread(self._store.get_call, call_sid)
            if rec is None or not rec.live:
                return True
            await asyncio.sleep(0.05)
        return False

    async def list_instances(self) -> list[InstanceInfo]:
        """The instances sharing this bridge's store (this one first)."""
        if self._instances is None:
            return []
        return await asyncio.to_thread(self._instances.list)

    # ------------------------------------------------------------------ helpers

    def _twilio_credentials(self) -> tuple[str, str]:
        # The platform's Twilio import needs the account SID and token (seed 000).
        tw = self._services.config.twilio
        if not tw.account_sid:
            raise ConfigError(
                "twilio.account_sid",
                "is not set; importing a Twilio number needs it",
                "TWILIO_ACCOUNT_SID",
            )
        if not tw.auth_token:
            raise ConfigError(
                "twilio.auth_token",
                "is not set; importing a Twilio number needs it",
                "TWILIO_AUTH_TOKEN",
            )
        return tw.account_sid, tw.auth_token

    async def _platform_number(self, number: str) -> PhoneNumber | None:
        numbers = await self._platform.list_phone_numbers()
        return next((n for n in numbers if n.phone_number == number), None)

    async def _agent_name(self, agent_id: str) -> str:
        try:
            agent = await self._platform.get_agent(agent_id)
        except PlatformApiError as e:
            if e.status == 404:
                raise InputError("agent_id", f"no agent {agent_id!r} on the platform") from None
            raise
        return agent.name

    async def _incoming_number(self, req: ImportNumber) -> IncomingNumber:
        twilio = self._twilio
        if twilio is None:  # _twilio_credentials() passed, so this is a wiring fault
            raise ConfigError("twilio", "Twilio REST client not configured", "credentials")
        if req.twilio_number_sid is not None:
            found = await twilio.get_incoming_number(req.twilio_number_sid)
            if found is None:
                raise InputError(
                    "twilio_number_sid", f"no number {req.twilio_number_sid} in the Twilio account"
                )
            if found.phone_number != req.number:
                raise InputError(
                    "twilio_number_sid",
                    f"{req.twilio_number_sid} is {found.phone_number}, not {req.number}",
                )
            return found
        found = await twilio.find_incoming_number(req.number)
        if found is None:
            raise InputError(
                "number",
                f"{req.number} is not a number of the Twilio account "
                "(set configure_twilio to false to import it without configuring Twilio)",
            )
        return found

    async def _incoming_for(self, rec: NumberRecord) -> IncomingNumber:
        assert self._twilio is not None
        found = (
            await self._twilio.get_incoming_number(rec.twilio_number_sid)
            if rec.twilio_number_sid
            else await self._twilio.find_incoming_number(rec.number)
        )
        if found is None:
            raise InputError(
                "restore_voice_url", f"{rec.number} is not a number of the Twilio account"
            )
        return found

    async def _point_at_bridge(self, sid: str) -> IncomingNumber:
        return await self._set_twilio(sid, self.voice_url, self.status_callback)

    async def _set_twilio(self, sid: str, voice_url: str, status_callback: str) -> IncomingNumber:
        assert self._twilio is not None
        return await self._twilio.configure_incoming_number(
            sid, voice_url=voice_url, status_callback=status_callback
        )

    async def _restore(self, before: IncomingNumber) -> IncomingNumber:
        assert self._twilio is not None
        return await self._twilio.configure_incoming_number(
            before.sid,
            voice_url=before.voice_url or "",
            status_callback=before.status_callback or "",
            voice_method=before.voice_method or "POST",
            status_callback_method=before.status_callback_method or "POST",
        )

    async def _platform_delete(self, phone_number_id: str) -> bool:
        try:
            await self._platform.delete_phone_number(phone_number_id)
        except PlatformApiError as e:
            if e.status == 404:
                return False  # already gone there: the wanted outcome
            raise
        return True

    # The routing table is changed from the loop thread, as it asks: a periodic sync
    # rebuilds it there too, and a change made from another thread in the middle of that
    # could be lost.  The store write inside is one small transaction.
    async def _apply(self, rec: NumberRecord) -> NumberRecord:
        return self._routing.apply(rec)

    async def _remove(self, rec: NumberRecord) -> bool:
        return self._routing.remove(rec.number)


def platform_numbers(platform: PlatformClient) -> Callable[[], Awaitable[list[PlatformNumber]]]:
    """The routing table's sync source: the platform's phone-number list."""

    async def fetch() -> list[PlatformNumber]:
        return [
            PlatformNumber(
                number=n.phone_number,
                phone_number_id=n.phone_number_id,
                label=n.label,
                provider="twilio" if isinstance(n, TwilioPhoneNumber) else "sip_trunk",
                agent_id=n.assigned_agent.agent_id if n.assigned_agent else None,
                agent_name=n.assigned_agent.agent_name if n.assigned_agent else None,
            )
            for n in await platform.list_phone_numbers()
        ]

    return fetch


@contextlib.asynccontextmanager
async def routing_sync(
    routing: RoutingTable, platform: PlatformClient, interval_s: float
) -> AsyncIterator[None]:
    """Keep the routing table synced from the platform while the block runs.

    Syncs at once and then every ``interval_s`` (0 = only once) in a background task,
    so start-up and calls never wait on the platform; a failed sync keeps the last
    known table (RoutingTable.sync logs it).
    """
    stop = asyncio.Event()
    task = asyncio.create_task(
        routing.run_periodic_sync(platform_numbers(platform), interval_s, stop),
        name="routing-sync",
    )
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
