"""The Twilio emulator's account: phone numbers, calls (live and ended), callee modes.

One :class:`TwilioEmulatorState` per emulated account.  REST handlers and the
inspection endpoints read and change it; synthetic calls run as background tasks it
owns (``aclose()`` hangs them up and waits).  It is also the
:class:`~.caller.CallRegistry` for inbound calls placed with :func:`~.caller.place_call`,
so a bridge's REST hang-up or transfer reaches them.

Outbound callee modes (see :mod:`.callee`) are chosen per called number with
:meth:`set_callee` (or ``PUT /emulator/twilio/callees``); other numbers get
``default_callee``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from bridge.emulator.twilio.callee import CalleeMode, callee_plan
from bridge.emulator.twilio.caller import CallSpec, SyntheticCall
from bridge.emulator.twilio.clock import check_speed
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallScript
from bridge.emulator.twilio.webhook import UrlMap, new_sid
from bridge.errors import InputError
from bridge.log import log_event

log = logging.getLogger("bridge.emulator.twilio")


@dataclass
class NumberRecord:
    sid: str
    phone_number: str
    friendly_name: str
    voice_url: str | None = None
    voice_method: str = "POST"
    voice_fallback_url: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)


@dataclass
class CallEntry:
    """A call the account knows about, with the wall-clock times REST reports."""

    call: SyntheticCall
    created: float  # epoch seconds
    updated: float
    phone_number_sid: str | None = None

    @property
    def result(self) -> CallResult:
        return self.call.result

    def epoch_at(self, call_t: float | None) -> float | None:
        """Epoch seconds of a call-time instant (call time runs ``speed`` times faster)."""
        if call_t is None:
            return None
        return self.created + call_t / self.result.speed


class TwilioEmulatorState:
    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        speed: float = 1.0,
        default_callee: CalleeMode = CalleeMode.HUMAN,
        url_map: Mapping[str, str] | None = None,
    ) -> None:
        if not (account_sid.startswith("AC") and len(account_sid) == 34):
            raise InputError(
                "account_sid", f"expected AC followed by 32 characters, got {account_sid!r}"
            )
        if not auth_token:
            raise InputError("auth_token", "must not be empty")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.speed = check_speed(speed)
        self.default_callee = default_callee
        self.url_map = UrlMap(dict(url_map or {}))
        self.numbers: dict[str, NumberRecord] = {}
        self.calls: dict[str, CallEntry] = {}
        self.callees: dict[str, CalleeMode] = {}
        self._tasks: set[asyncio.Task[CallResult]] = set()
        self._http: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ numbers

    def add_number(
        self,
        phone_number: str,
        *,
        voice_url: str | None = None,
        voice_method: str = "POST",
        status_callback: str | None = None,
        friendly_name: str | None = None,
    ) -> NumberRecord:
        if self.find_number(phone_number) is not None:
            raise InputError("PhoneNumber", f"{phone_number} is already on this account")
        rec = NumberRecord(
            sid=new_sid("PN"),
            phone_number=phone_number,
            friendly_name=friendly_name or phone_number,
            voice_url=voice_url,
            voice_method=voice_method,
            status_callback=status_callback,
        )
        self.numbers[rec.sid] = rec
        return rec

    def find_number(self, phone_number: str) -> NumberRecord | None:
        return next((n for n in self.numbers.values() if n.phone_number == phone_number), None)

    # ------------------------------------------------------------------ callees

    def set_callee(self, number: str, mode: CalleeMode) -> None:
        self.callees[number] = mode

    def callee_for(self, number: str) -> CalleeMode:
        return self.callees.get(number, self.default_callee)

    # ------------------------------------------------------------------ calls

    @property
    def http(self) -> httpx.AsyncClient:
        """One client for every call's requests (connection reuse across hundreds of calls)."""
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False, timeout=15.0)
        return self._http

    def register(self, call: SyntheticCall, phone_number_sid: str | None = None) -> None:
        now = time.time()
        self.calls[call.call_sid] = CallEntry(call, now, now, phone_number_sid)

    def start(self, call: SyntheticCall, phone_number_sid: str | None = None) -> CallEntry:
        """Register ``call`` and run it in the background."""
        self.register(call, phone_number_sid)
        task = asyncio.create_task(call.run(), name=f"twilio-emulator-{call.call_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self.calls[call.call_sid]

    def create_outbound(self, form: Mapping[str, str], events: list[str]) -> CallEntry:
        """``POST /Calls.json``: validated form values → a running outbound call."""
        to, from_ = form.get("To", ""), form.get("From", "")
        url, twiml = form.get("Url") or None, form.get("Twiml") or None
        mode = self.callee_for(to)
        plan = callee_plan(
            mode,
            machine_detection=form.get("MachineDetection") or None,
            async_amd=form.get("AsyncAmd", "false").lower() == "true",
            amd_callback=form.get("AsyncAmdStatusCallback") or None,
            amd_callback_method=form.get("AsyncAmdStatusCallbackMethod", "POST"),
        )
        spec = CallSpec(
            to=to,
            from_=from_,
            url=url if twiml is None else None,
            method=form.get("Method", "POST"),
            twiml=twiml,
            direction="outbound-api",
            account_sid=self.account_sid,
            auth_token=self.auth_token,
            script=plan.script,
            speed=self.speed,
            status_callback=form.get("StatusCallback") or None,
            status_callback_method=form.get("StatusCallbackMethod", "POST"),
            status_callback_events=frozenset(events or ["completed"]),
            url_map=self.url_map,
            answer=plan.answer,
            ring_s=1.0,
            ring_timeout_s=float(form.get("Timeout", "60")),
            amd=plan.amd,
        )
        entry = self.start(SyntheticCall(spec, http=self.http))
        log_event(
            log,
            "twilio_emulator.outbound_call",
            call_sid=entry.call.call_sid,
            to=to,
            callee=mode.value,
        )
        return entry

    async def place_inbound(
        self,
        *,
        to: str,
        from_: str,
        script: CallScript | None = None,
        speed: float | None = None,
        extra_params: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> CallEntry:
        """A call from ``from_`` to one of the account's numbers, sent to its ``VoiceUrl``.

        With ``wait`` the call has ended when this returns; otherwise it runs on.
        """
        number = self.find_number(to)
        if number is None or not number.voice_url:
            raise InputError("To", f"{to} is not a number on this account with a VoiceUrl")
        spec = CallSpec(
            to=to,
            from_=from_,
            url=number.voice_url,
            method=number.voice_method,
            direction="inbound",
            account_sid=self.account_sid,
            auth_token=self.auth_token,
            script=script or CallScript(),
            speed=self.speed if speed is None else speed,
            status_callback=number.status_callback,
            status_callback_method=number.status_callback_method,
            url_map=self.url_map,
            extra_params=tuple((extra_params or {}).items()),
        )
        call = SyntheticCall(spec, http=self.http)
        entry = self.start(call, number.sid)
        if wait:
            await call.finished.wait()
        return entry

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Hang up every live call, wait for them, release the HTTP client."""
        for entry in self.calls.values():
            entry.call.hang_up("emulator shutting down")
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._http is not None:
            await self._http.aclose()
            self._http = None
