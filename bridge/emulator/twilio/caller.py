"""The synthetic caller: acts as Twilio toward a bridge for one call.

:class:`SyntheticCall` runs a call the way Twilio does and records everything:

1. (outbound) ``initiated`` → ``ringing`` → answered, busy, no-answer or failed;
2. requests TwiML (the voice webhook, signed, or inline ``Twiml``), then runs it with the
   pure :class:`~.program.Program`: ``<Say>``/``<Play>`` are recorded, ``<Pause>`` waits,
   ``<Connect><Stream>`` runs a :class:`~.session.StreamSession`, ``<Redirect>`` and
   ``<Connect action>`` fetch the next document, ``<Dial>`` records a transfer,
   ``<Reject>``/``<Hangup>``/the end of the document end the call;
3. sends the status callbacks asked for (``completed`` carries ``CallDuration``) and the
   stream's ``statusCallback`` (``stream-started``/``stream-stopped``/``stream-error``).

While it runs, :meth:`hang_up` and :meth:`update` do what ``POST …/Calls/{Sid}.json``
does to a live call (``Status=completed``; ``Twiml=``/``Url=``).  :func:`place_call` is
the one-liner for an inbound call at a bridge.

Nothing here raises for what the far side does: an unreachable webhook, a 500, bad
TwiML, a refused upgrade or a bad frame become the call's ``outcome`` and ``reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urljoin

import httpx

from bridge.emulator.twilio.callbacks import CALLBACK_TIMEOUT_S, STATUS_EVENTS, Callbacks
from bridge.emulator.twilio.callee import AmdPlan
from bridge.emulator.twilio.clock import CallClock, check_speed
from bridge.emulator.twilio.program import Experience, Fetch, OpenStream, Outcome, Program
from bridge.emulator.twilio.records import CallResult, FetchRecord, StreamRecord
from bridge.emulator.twilio.script import CallScript, ScriptRunner
from bridge.emulator.twilio.session import Interrupts, StreamIdentity, StreamSession
from bridge.emulator.twilio.twiml import Document, Pause, Stream, parse_twiml
from bridge.emulator.twilio.webhook import (
    UrlMap,
    call_params,
    completed_params,
    new_sid,
    signed_request,
)
from bridge.errors import InputError, TwimlError
from bridge.log import log_event

log = logging.getLogger("bridge.emulator.twilio")

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
ANSWER_MODES = ("answer", "busy", "no-answer", "failed")
FETCH_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class CallSpec:
    """Everything that defines one synthetic call.

    ``url`` is the voice URL as Twilio would call it (the public one); ``url_map`` says
    where to actually connect.  ``twiml`` replaces the first fetch (REST ``Twiml=``).
    ``answer``/``ring_s``/``ring_timeout_s`` shape the pre-answer phase of outbound
    calls; ``amd`` is what answering-machine detection reports (synchronous: the first
    fetch waits for it and carries ``AnsweredBy``; asynchronous: it goes to its callback);
    ``extra_params`` go with every TwiML request (``ForwardedFrom``, ``CallerName`` …).
    """

    to: str
    from_: str
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    direction: str = "inbound"
    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str | None = None
    call_sid: str | None = None
    script: CallScript = field(default_factory=CallScript)
    speed: float = 1.0
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})
    url_map: UrlMap = field(default_factory=UrlMap)
    extra_params: tuple[tuple[str, str], ...] = ()
    answer: str = "answer"
    ring_s: float = 0.0
    ring_timeout_s: float = 60.0
    amd: AmdPlan | None = None
    stream_open_timeout_s: float = 10.0
    max_message_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        check_speed(self.speed)
        if (self.url is None) == (self.twiml is None):
            raise InputError("url", "give exactly one of url and twiml")
        if self.answer not in ANSWER_MODES:
            raise InputError("answer", f"expected one of {ANSWER_MODES}, got {self.answer!r}")
        if self.method.upper() not in ("GET", "POST"):
            raise InputError("method", f"expected GET or POST, got {self.method!r}")
        unknown = set(self.status_callback_events) - STATUS_EVENTS
        if unknown:
            raise InputError("status_callback_events", f"unknown events {sorted(unknown)}")


class CallRegistry(Protocol):
    """Somewhere live calls are announced, so REST requests can reach them."""

    def register(self, call: SyntheticCall) -> None: ...


class SyntheticCall:
    def __init__(
        self,
        spec: CallSpec,
        *,
        http: httpx.AsyncClient | None = None,
        runner: ScriptRunner | None = None,
    ) -> None:
        """``runner``: one for ``spec.script`` to use instead of a plain one (e.g. one
        that also keeps the frames it produced)."""
        self.spec = spec
        self.clock = CallClock(spec.speed)
        self.result = CallResult(
            call_sid=spec.call_sid or new_sid("CA"),
            account_sid=spec.account_sid,
            direction=spec.direction,
            to=spec.to,
            from_=spec.from_,
            speed=self.clock.speed,
            t0=self.clock.t0,
        )
        self.runner = runner or ScriptRunner(spec.script)
        self.ended = asyncio.Event()  # the call is over (callbacks may still be in flight)
        self.finished = asyncio.Event()  # run() is done, callbacks included
        self._http = http
        self._interrupts = Interrupts()
        self._update: tuple[str | None, str | None, str] | None = None  # (twiml, url, method)
        self._amd_task: asyncio.Task[None] | None = None

    @property
    def call_sid(self) -> str:
        return self.result.call_sid

    # ------------------------------------------------------------------ control (REST)

    def hang_up(self, reason: str = "Status=completed via REST", *, by: str = "rest") -> None:
        """End the call now (``stop`` and close if a stream is open). ``by``: rest | caller."""
        if self.result.outcome is None:
            self._interrupts.set("caller" if by == "caller" else "hangup", reason)

    def update(
        self, *, twiml: str | None = None, url: str | None = None, method: str = "POST"
    ) -> None:
        """Replace the running TwiML (REST ``Twiml=``/``Url=``); ends an open stream."""
        if (twiml is None) == (url is None):
            raise InputError("twiml", "give exactly one of twiml and url")
        if self.result.outcome is None:
            self._update = (twiml, url, method.upper())
            self._interrupts.set("redirect", "TwiML updated via REST")

    # ------------------------------------------------------------------ run

    async def run(self) -> CallResult:
        own_http = self._http is None
        http = self._http or httpx.AsyncClient(trust_env=False, timeout=FETCH_TIMEOUT_S)
        res = self.result
        callbacks = Callbacks(
            http,
            clock=self.clock,
            auth_token=self.spec.auth_token,
            url_map=self.spec.url_map,
            records=res.callbacks,
        )
        cancelled = False
        try:
            await self._run(http, callbacks)
        except asyncio.CancelledError:
            cancelled = True
            self._end(
                Outcome.FAILED, "cancelled", "canceled" if res.answered_at is None else "completed"
            )
            raise
        except Exception as e:  # an emulator bug must end the call visibly, not hang a test
            log.exception("twilio_emulator.call_crashed")
            self._end(Outcome.FAILED, f"emulator error: {type(e).__name__}: {e}", "failed")
        finally:
            if self._amd_task is not None:
                self._amd_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._amd_task
            res.script_events = list(self.runner.events)
            self._status(callbacks, "completed", res.status)
            with contextlib.suppress(asyncio.CancelledError):
                # Cancelled (e.g. a load-test deadline): don't linger on slow callbacks.
                await callbacks.drain(0.5 if cancelled else CALLBACK_TIMEOUT_S)
            if own_http:
                await http.aclose()
            self.finished.set()
            log_event(
                log,
                "twilio_emulator.call_ended",
                call_sid=res.call_sid,
                direction=res.direction,
                outcome=res.outcome.value if res.outcome else None,
                reason=res.reason,
            )
        return res

    async def _run(self, http: httpx.AsyncClient, callbacks: Callbacks) -> None:
        spec, res = self.spec, self.result
        if spec.direction != "inbound":
            if not await self._ring(callbacks):
                return
        else:
            res.status = "ringing"
        if spec.twiml is not None:
            doc_url = spec.url or ""
            document = self._parse(spec.twiml, "twiml", doc_url, spec.method, None)
        else:
            assert spec.url is not None
            doc_url = spec.url
            if spec.amd is not None and not spec.amd.asynchronous:
                await self._interruptible(spec.amd.detection_s)
                self._detected(spec.amd)
            document = await self._fetch(http, doc_url, spec.method, "webhook")
        if document is None:
            return
        program = Program(document, doc_url)
        while True:
            interrupt = self._interrupts.take()
            if interrupt is not None:
                document = await self._interrupted(http, interrupt.kind, interrupt.reason)
                if document is None:
                    return
                program.load(document, self._update_url())
            action = program.next_action()
            if program.answered:
                self._answered(callbacks)
            if isinstance(action, Experience):
                res.experience.append(action.verb)
                if isinstance(action.verb, Pause):
                    await self._interruptible(action.verb.length)
            elif isinstance(action, OpenStream):
                res.experience.append(action.connect)
                session = await self._stream(callbacks, action.stream)
                if session.hung_up is not None:
                    self._end(Outcome.COMPLETED, f"caller hung up ({session.hung_up})", "completed")
                    return
                rec = session.record
                if rec.ended_by == "error":
                    self._end(Outcome.FAILED, rec.error or "stream error", "failed")
                    return
            elif isinstance(action, Fetch):
                if action.verb is not None:
                    res.experience.append(action.verb)
                fetched = await self._fetch(http, action.url, action.method, action.why)
                if fetched is None:
                    return
                program.load(fetched, action.url)
            else:
                if action.verb is not None:
                    res.experience.append(action.verb)
                if action.transfer_to is not None:
                    res.transfer_to = action.transfer_to
                self._end(action.outcome, action.reason, action.call_status)
                return

    # ------------------------------------------------------------------ phases

    async def _ring(self, callbacks: Callbacks) -> bool:
        """Outbound pre-answer phase; False when the call ends without an answer."""
        spec, res = self.spec, self.result
        res.status = "queued"
        self._status(callbacks, "initiated", "initiated")
        res.status = "ringing"
        self._status(callbacks, "ringing", "ringing")
        if spec.answer == "answer":
            await self._interruptible(spec.ring_s)
        elif spec.answer == "no-answer":
            await self._interruptible(spec.ring_timeout_s)
        else:
            await self._interruptible(min(spec.ring_s, 1.0))
        interrupt = self._interrupts.take()
        if interrupt is not None:
            self._end(Outcome.CANCELED, f"canceled while ringing: {interrupt.reason}", "canceled")
            return False
        if spec.answer == "answer":
            self._answered(callbacks)
            return True
        outcome = {"busy": Outcome.BUSY, "no-answer": Outcome.NO_ANSWER}.get(
            spec.answer, Outcome.FAILED
        )
        self._end(outcome, f"callee: {spec.answer}", spec.answer)
        return False

    def _answered(self, callbacks: Callbacks) -> None:
        res = self.result
        if res.answered_at is not None:
            return
        res.answered_at = self.clock.now()
        res.status = "in-progress"
        self._status(callbacks, "answered", "in-progress")
        amd = self.spec.amd
        if amd is not None and amd.asynchronous:
            self._amd_task = asyncio.create_task(self._async_amd(callbacks, amd))

    def _detected(self, amd: AmdPlan) -> dict[str, str]:
        self.result.answered_by = amd.answered_by
        return {
            "AnsweredBy": amd.answered_by,
            "MachineDetectionDuration": str(round(amd.detection_s * 1000)),
        }

    async def _async_amd(self, callbacks: Callbacks, amd: AmdPlan) -> None:
        await self.clock.sleep(amd.detection_s)
        if self.result.outcome is not None:
            return
        params = {"AccountSid": self.result.account_sid, "CallSid": self.result.call_sid}
        params.update(self._detected(amd))
        if amd.callback:
            url = urljoin(self.spec.url or "", amd.callback)
            callbacks.fire("amd", amd.answered_by, url, amd.callback_method, params)

    async def _stream(self, callbacks: Callbacks, stream: Stream) -> StreamSession:
        spec, res = self.spec, self.result
        rec = StreamRecord(
            url=stream.url,
            connect_url=spec.url_map.reach(stream.url),
            stream_sid=new_sid("MZ"),
            custom_parameters=stream.custom_parameters,
        )
        res.streams.append(rec)
        session = StreamSession(
            rec,
            StreamIdentity(res.account_sid, res.call_sid, rec.stream_sid),
            clock=self.clock,
            runner=self.runner,
            interrupts=self._interrupts,
            auth_token=spec.auth_token,
            open_timeout_s=spec.stream_open_timeout_s,
            max_message_bytes=spec.max_message_bytes,
        )
        if stream.status_callback:
            session.on_started = lambda: self._stream_callback(
                callbacks, stream, rec, "stream-started"
            )
        await session.run()
        if stream.status_callback:
            event = "stream-error" if rec.error else "stream-stopped"
            self._stream_callback(callbacks, stream, rec, event)
        return session

    def _stream_callback(
        self, callbacks: Callbacks, stream: Stream, rec: StreamRecord, event: str
    ) -> None:
        assert stream.status_callback is not None
        params = {
            "AccountSid": self.result.account_sid,
            "CallSid": self.result.call_sid,
            "StreamSid": rec.stream_sid,
            "StreamName": stream.name or rec.stream_sid,
            "StreamEvent": event,
            "Timestamp": _iso_now(),
        }
        if event == "stream-error":
            params["StreamError"] = rec.error or ""
        url = urljoin(self.spec.url or stream.url, stream.status_callback)
        callbacks.fire("stream", event, url, stream.status_callback_method, params)

    async def _interrupted(
        self, http: httpx.AsyncClient, kind: str, reason: str
    ) -> Document | None:
        if kind != "redirect" or self._update is None:
            self._end(Outcome.COMPLETED, reason, "completed")
            return None
        twiml, url, method = self._update
        if twiml is not None:
            return self._parse(twiml, "rest-update", url or "", method, None)
        assert url is not None
        return await self._fetch(http, url, method, "rest-update")

    def _update_url(self) -> str:
        assert self._update is not None
        return self._update[1] or self.spec.url or ""

    # ------------------------------------------------------------------ helpers

    def _params(self) -> dict[str, str]:
        spec, res = self.spec, self.result
        params = call_params(
            account_sid=res.account_sid,
            call_sid=res.call_sid,
            from_=spec.from_,
            to=spec.to,
            direction=spec.direction,
            call_status=res.status,
        )
        params.update(spec.extra_params)
        amd = spec.amd
        if amd is not None and not amd.asynchronous and self.result.answered_by is not None:
            params.update(self._detected(amd))
        return params

    async def _fetch(
        self, http: httpx.AsyncClient, url: str, method: str, why: str
    ) -> Document | None:
        """Request TwiML as Twilio does; on failure the call fails (Twilio's 11200/12100)."""
        t = self.clock.now()
        req = signed_request(method, url, self._params(), self.spec.auth_token)
        try:
            resp = await http.request(
                req.method,
                self.spec.url_map.reach(req.url),
                data=req.form or None,
                headers=req.headers,
                timeout=FETCH_TIMEOUT_S,
            )
        except httpx.HTTPError as e:
            error = f"{why}: request failed: {type(e).__name__}: {e}"
            self.result.fetches.append(FetchRecord(t, why, url, method, None, error, ""))
            self._end(Outcome.FAILED, error, "failed")
            return None
        if not 200 <= resp.status_code < 300:
            error = f"{why}: HTTP {resp.status_code}"
            self.result.fetches.append(
                FetchRecord(t, why, url, method, resp.status_code, error, resp.text[:2000])
            )
            self._end(Outcome.FAILED, error, "failed")
            return None
        return self._parse(resp.text, why, url, method, resp.status_code, t)

    def _parse(
        self, text: str, why: str, url: str, method: str, status: int | None, t: float | None = None
    ) -> Document | None:
        t = self.clock.now() if t is None else t
        try:
            doc = parse_twiml(text)
        except TwimlError as e:
            error = f"{why}: bad TwiML: {e.detail}"
            self.result.fetches.append(FetchRecord(t, why, url, method, status, error, text[:2000]))
            self._end(Outcome.FAILED, error, "failed")
            return None
        self.result.fetches.append(
            FetchRecord(t, why, url, method, status, None, text, doc.verbs, doc.warnings)
        )
        self.result.warnings.extend(doc.warnings)
        return doc

    async def _interruptible(self, call_seconds: float) -> None:
        """Wait ``call_seconds`` of call time, or less if the call is interrupted."""
        if call_seconds <= 0 or self._interrupts.current is not None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._interrupts.event.wait(), self.clock.wall(call_seconds))

    def _status(self, callbacks: Callbacks, event: str, call_status: str) -> None:
        spec = self.spec
        if not spec.status_callback or event not in spec.status_callback_events:
            return
        params = self._params()
        params["CallStatus"] = call_status
        if event == "completed":
            params.update(completed_params(self.result.duration_s, call_status))
        url = urljoin(spec.url or "", spec.status_callback)
        callbacks.status(url, spec.status_callback_method, event, params)

    def _end(self, outcome: Outcome, reason: str, call_status: str) -> None:
        res = self.result
        if res.outcome is not None:
            return
        res.outcome, res.reason, res.status = outcome, reason, call_status
        res.ended_at = self.clock.now()
        self.ended.set()


def _iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def place_call(
    bridge_url: str,
    *,
    to: str = "+15550100001",
    from_: str = "+15550100002",
    script: CallScript | None = None,
    auth_token: str | None = None,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    speed: float = 1.0,
    voice_path: str = "/twilio/voice",
    public_url: str | None = None,
    status_callback: str | None = "/twilio/status",
    status_callback_events: frozenset[str] = frozenset({"completed"}),
    extra_params: Mapping[str, str] | None = None,
    http: httpx.AsyncClient | None = None,
    registry: CallRegistry | None = None,
) -> CallResult:
    """Place a synthetic inbound call at a bridge and return what happened.

    ``bridge_url`` is where the bridge listens (``http://127.0.0.1:PORT``); ``public_url``
    is the URL the bridge believes Twilio reaches it at (signatures and TwiML use it),
    defaulting to ``bridge_url``.  ``status_callback`` may be a path (resolved against the
    public URL) or ``None``.  ``registry`` (e.g. the REST emulator's state) gets the call
    registered, so the bridge's REST hang-up/transfer reach it.
    """
    base = (public_url or bridge_url).rstrip("/")
    spec = CallSpec(
        to=to,
        from_=from_,
        url=base + voice_path,
        account_sid=account_sid,
        auth_token=auth_token,
        script=script or CallScript(),
        speed=speed,
        status_callback=urljoin(base + "/", status_callback) if status_callback else None,
        status_callback_events=status_callback_events,
        url_map=UrlMap.for_bridge(bridge_url, public_url),
        extra_params=tuple((extra_params or {}).items()),
    )
    call = SyntheticCall(spec, http=http)
    if registry is not None:
        registry.register(call)
    return await call.run()
