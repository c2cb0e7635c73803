"""The asyncio driver of one :class:`~bridge.call.session.CallSession`.

It owns everything with a lifetime: the Twilio WebSocket, the agent's conversation
socket, the timers and the tool tasks.  It feeds the session what happens and carries
out its actions; every decision is the session's.

Both sockets are :mod:`bridge.ws` sockets: a message calls the driver synchronously
(:class:`_CallerSide` / :class:`_AgentSide`), the session handles it, and
:meth:`CallDriver._pump` writes whatever the session queued at once, several frames in
one write.  So the per-frame cost is a parse, the session's work and one write: no task
wake-up, no queue hand-off, no logging.  While a peer reads too slowly (``can_send`` is
False) frames stay in the session's bounded queues, which shed old audio; the socket's
``on_writable`` flushes them.

Tasks per call: the agent task (connect, then done) and short-lived tool / REST tasks.

Timing is the driver's too: its :class:`~bridge.call.sampling.RelaySampler` wraps the
session's transcoders and follows a sample of agent audio events to the Twilio socket;
the session itself never reads a clock for metrics.

When the session reports :class:`~bridge.call.actions.Finished`, :meth:`CallDriver.run`
lets the stream close (bounded), then cancels and awaits whatever is left: no task,
socket or resampler outlives the call.

How the call continues after the stream (the session's ``EndStream``): the decision is
kept in :class:`~bridge.call.registry.LiveCalls` for ``POST /twilio/after-stream`` (the
``<Connect action>`` Twilio requests once the socket closes).  That request may reach
another bridge instance, which does not know the decision and answers "hang up".  So
when Twilio credentials are configured, a transfer or an apology is sent as a REST
update of the call (``Twiml=``) *before* the stream is closed: Twilio then runs it
whichever instance it would have asked, and never requests the action.  A plain hang-up
needs neither: it is every instance's default, and REST ``Status=completed`` follows.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import traceback
from collections.abc import Coroutine, Mapping
from typing import Any

import msgspec

from bridge.call.actions import (
    HANGUP,
    Action,
    CallerDtmf,
    CancelTimer,
    CloseAgent,
    ConnectAgent,
    Disposition,
    EndReason,
    EndStream,
    Finished,
    Hangup,
    RunTool,
    StartTimer,
    Timer,
    UpdateRecord,
    to_twiml,
)
from bridge.call.plan import CallPlan, plan_for_stream
from bridge.call.sampling import RelaySampler
from bridge.call.services import CallServices, CallWatcher
from bridge.call.session import CallSession
from bridge.call.stream_gate import StreamGate
from bridge.convai.messages import Audio, Ping, parse_server
from bridge.edge.turns import spread
from bridge.errors import BridgeError, ConvaiProtocolError, PlatformApiError, TwilioProtocolError
from bridge.log import log_event
from bridge.metrics import FROM_AGENT, FROM_CALLER, TO_AGENT, TO_CALLER
from bridge.platform.reachability import connect_error_kind
from bridge.recording.call import CallRecording, recording_path
from bridge.recording.call import open_failed as recording_open_failed
from bridge.store.records import CallRecord, CallUpdate
from bridge.twilio.media import Media, binary_frame_error, parse_from_twilio
from bridge.ws.socket import INTERNAL_ERROR, MessageSocket

logger = logging.getLogger("bridge.call")

STREAM_CLOSE_GRACE_S = 5.0  # flushing the last frames and closing the Twilio socket
REST_GRACE_S = 10.0  # a REST update that must land before the stream closes
READER_GRACE_S = 2.0  # Twilio's answer to our close
AGENT_CLOSE_GRACE_S = 2.0  # the agent's answer to our close
_CLEAN_REASONS = frozenset(
    {
        EndReason.CALLER_HANGUP,
        EndReason.AGENT_ENDED,
        EndReason.AGENT_END_CALL,
        EndReason.TRANSFER,
        EndReason.ADMIN_HANGUP,
    }
)


RELAY_WINDOW = 200  # relay samples kept per call


class CallDriver:
    """Runs one call; also the call's :class:`~bridge.call.tools.CallControl`."""

    def __init__(self, twilio: MessageSocket, services: CallServices):
        self._relay_metric = services.metrics.relay_seconds
        self.twilio = twilio
        self.services = services
        metrics = services.metrics
        # The call's newest relay samples (the operator console's per-call p99).
        self._relays: collections.deque[float] = collections.deque(maxlen=RELAY_WINDOW)
        self._sampler = RelaySampler(
            lambda direction, s: metrics.transcode_seconds.labels(direction).observe(s),
            self._relayed,
        )
        self.session = CallSession(
            services.settings,
            self._plan,
            services.tools.names,
            wrap_transcoders=self._sampler.wrap,
            check=StreamGate(
                services.config,
                services.calls,
                services.stream_admission,
                claim=services.stream_claim,
            ),
        )
        self._loop = asyncio.get_running_loop()
        self._finished = asyncio.Event()
        self._stream_closed = asyncio.Event()
        self._may_close = False  # the stream may be closed once its queue is drained
        self._closing_stream = False
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._agent_task: asyncio.Task[None] | None = None
        self._agent: MessageSocket | None = None
        self._end_stream: EndStream | None = None
        self._registered = False
        self._recorded = False
        self._watcher: CallWatcher | None = None
        self._recording: CallRecording | None = None  # what the caller heard (opt-in)

    def _relayed(self, seconds: float) -> None:
        self._relay_metric.observe(seconds)
        self._relays.append(seconds)

    @property
    def relay_p99_ms(self) -> float | None:
        """p99 of the call's newest sampled relay latencies (None before any)."""
        if not self._relays:
            return None
        ordered = sorted(self._relays)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000.0

    @property
    def turns(self) -> int:
        """Agent turns measured so far (bridge.call.latency)."""
        return len(self.session.turns.turns)

    def _plan(self, params: Mapping[str, str]) -> CallPlan | None:
        return plan_for_stream(params, self.services.routing)

    # ------------------------------------------------------------------ CallControl

    @property
    def call_sid(self) -> str:
        return self.session.call_sid

    @property
    def stream_sid(self) -> str:
        return self.session.stream_sid

    @property
    def agent_id(self) -> str:
        return self.session.agent_id

    @property
    def parameters(self) -> Mapping[str, str]:
        return self.session.parameters

    def end_call(
        self,
        reason: EndReason = EndReason.AGENT_END_CALL,
        disposition: Disposition = HANGUP,
        *,
        wait_for_playout: bool = True,
    ) -> None:
        self.session.request_end(reason, disposition, wait_for_playout=wait_for_playout)
        self._pump()

    def send_to_agent(self, message: msgspec.Struct) -> None:
        self.session.send_to_agent(message)
        self._pump()

    def play_to_caller(self, ulaw: bytes, label: str) -> None:
        self.session.play_to_caller(ulaw, label)
        self._pump()

    # ------------------------------------------------------------------ lifetime

    async def run(self) -> None:
        """Drive the call until it is over on both sides (the socket is accepted)."""
        self.twilio.attach(_CallerSide(self))
        self._pump()  # the session's start-timeout timer
        try:
            await self._finished.wait()
            if self._end_stream is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STREAM_CLOSE_GRACE_S + REST_GRACE_S):
                        await self._stream_closed.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(READER_GRACE_S):
                    await self.twilio.wait_closed()
        finally:
            if not self.session.ended:  # cancelled from outside: the server is stopping
                self.session.request_end(EndReason.SHUTDOWN, wait_for_playout=False)
                self._pump()
            self._end_recording()  # whatever ended the call, crashes included
            await self._cleanup()

    async def _cleanup(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.twilio.close(1000)  # a no-op when it is closed already
        agent = self._agent
        if agent is not None:
            agent.close(1000)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(AGENT_CLOSE_GRACE_S):
                    await agent.wait_closed()
        if self._agent_task is not None:
            self._agent_task.cancel()
        # REST requests get their own timeout; tools are abandoned with the call.
        rest = [t for t in self._tasks if t.get_name().startswith("rest-")]
        if rest:
            await asyncio.wait(rest, timeout=REST_GRACE_S)
        for t in self._tasks:
            t.cancel()
        leftovers = [*self._tasks]
        if self._agent_task is not None:
            leftovers.append(self._agent_task)
        outcomes = await asyncio.gather(*leftovers, return_exceptions=True)
        for task, outcome in zip(leftovers, outcomes, strict=True):
            if isinstance(outcome, Exception):
                self._crashed(task.get_name(), outcome)
        if self._registered:
            self.services.calls.remove(self.session.call_sid, self)
            self.services.metrics.active_calls.dec()
        if self._watcher is not None:
            self._watcher.ended()
        # After the watcher wrote what it observed: the record is final (webhooks).
        ended = self.services.on_call_ended
        if ended is not None and self._registered:
            ended(self.session.call_sid)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:
            self._crashed(task.get_name(), e)

    def _crashed(self, task: str, e: BaseException) -> None:
        """A task died of an exception nobody handles: a bug, never to pass silently."""
        log_event(
            logger,
            "call.task_crashed",
            logging.ERROR,
            call_sid=self.call_sid or None,
            task=task,
            error=f"{type(e).__name__}: {e}",
            traceback="".join(traceback.format_exception(e)),
        )

    # ------------------------------------------------------------------ session I/O

    def _pump(self) -> None:
        """Carry out what the session asked for; write the frames it queued."""
        s = self.session
        if s.has_actions:
            for action in s.take_actions():
                self._do(action)
            # call_sid is set only once the stream gate admitted the start, and the gate
            # refuses a live duplicate: add() failing is a bug, never an overwrite.
            if not self._registered and s.call_sid and not s.ended:
                if not self.services.calls.add(self):
                    raise RuntimeError("a second live stream for one call SID")
                self._registered = True
                self.services.metrics.active_calls.inc()
                if self.services.watch is not None:
                    self._watcher = self.services.watch(self)
                self._start_recording()
        if s.to_twilio.chars or self._end_stream is not None:
            self._flush_twilio()
        if s.to_agent.chars:
            self._flush_agent()

    def _do(self, action: Action) -> None:
        match action:
            case ConnectAgent(agent_id=agent_id):
                self._agent_task = asyncio.create_task(self._run_agent(agent_id), name="agent")
            case CloseAgent(code=code, reason=reason):
                if self._agent is not None:
                    self._agent.close(code, reason)
                elif self._agent_task is not None:
                    self._agent_task.cancel()  # still connecting
            case StartTimer(name=name, delay_s=delay):
                if (old := self._timers.pop(name, None)) is not None:
                    old.cancel()
                self._timers[name] = self._loop.call_later(delay, self._due, name)
            case CancelTimer(name=name):
                if (old := self._timers.pop(name, None)) is not None:
                    old.cancel()
            case RunTool():
                self._spawn(self._run_tool(action), f"tool-{action.name}")
            case CallerDtmf(digit=digit):
                if self.services.on_keypad is not None:
                    self._spawn(self.services.on_keypad(self, digit), "keypad")
                else:
                    # Never the digit itself: keypad entries are PINs and card numbers.
                    log_event(logger, "call.keypad", logging.DEBUG, call_sid=self.call_sid)
            case EndStream(disposition=disposition):
                self._end_stream = action
                sid, rest = self.session.call_sid, self.services.twilio_rest
                if sid:
                    self.services.calls.set_next(sid, disposition)
                if sid and rest is not None and not isinstance(disposition, Hangup):
                    self._spawn(self._rest_redirect(disposition), "rest-redirect")
                else:
                    self._may_close = True
                    if sid and rest is not None:
                        self._spawn(self._rest_hangup(), "rest-hangup")
            case UpdateRecord(fields=fields):
                self._record(fields)
            case Finished():
                self._observe(action)
                self._finished.set()

    def _due(self, name: Timer) -> None:
        # Calls opened together time out together (a flood of streams that never start):
        # a few per loop iteration, so their endings never stall the calls in progress.
        handle = self._timers.get(name)
        spread().run(lambda: self._fire(name, handle))

    def _fire(self, name: Timer, handle: asyncio.TimerHandle | None) -> None:
        if handle is None or self._timers.get(name) is not handle:
            return  # cancelled or re-armed while it waited for its turn
        del self._timers[name]
        self.session.timer_fired(name)
        self._pump()

    # ------------------------------------------------------------------ Twilio socket

    def caller_text(self, text: str) -> None:
        s = self.session
        try:
            msg = parse_from_twilio(text)
        except TwilioProtocolError as e:
            s.caller_garbage(e)
        else:
            s.caller_message(msg)
            if type(msg) is Media:
                if self._watcher is not None:
                    self._watcher.caller_audio(msg.media.payload)
                if self._recording is not None:
                    self._recording.caller_media(msg.media)
        self._pump()

    def caller_binary(self) -> None:
        self.session.caller_garbage(binary_frame_error())
        self._pump()

    def caller_closed(self) -> None:
        self._stream_closed.set()
        self._end_recording()
        self.session.caller_closed()
        self._pump()

    def _flush_twilio(self) -> None:
        q, tw = self.session.to_twilio, self.twilio
        if q.chars and tw.can_send:
            texts = q.take_all()
            tw.send_texts(texts)
            self.session.twilio_written()
            if self._recording is not None:
                self._recording.sent(texts)
            if self._sampler.following:
                self._sampler.written(q)
        if self._end_stream is not None and self._may_close and not q.chars:
            self._close_stream()

    def _close_stream(self) -> None:
        if not self._closing_stream:
            # Twilio ends <Connect> when we close, then asks the action URL.
            self._closing_stream = True
            assert self._end_stream is not None
            self.twilio.close(self._end_stream.close_code)
            self._stream_closed.set()
            self._end_recording()

    async def _rest_redirect(self, disposition: Disposition) -> None:
        rest = self.services.twilio_rest
        assert rest is not None
        try:
            live = await rest.redirect(self.call_sid, to_twiml(disposition))
        except BridgeError as e:  # the <Connect action> answer is the fallback
            log_event(
                logger,
                "call.rest_redirect_failed",
                logging.WARNING,
                call_sid=self.call_sid,
                error=str(e),
            )
        else:
            log_event(logger, "call.rest_redirect", call_sid=self.call_sid, was_live=live)
        finally:
            self._may_close = True
            self._pump()

    async def _rest_hangup(self) -> None:
        rest = self.services.twilio_rest
        assert rest is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STREAM_CLOSE_GRACE_S):
                await self._stream_closed.wait()
        try:
            live = await rest.hangup(self.call_sid)
        except BridgeError as e:
            log_event(
                logger,
                "call.rest_hangup_failed",
                logging.WARNING,
                call_sid=self.call_sid,
                error=str(e),
            )
        else:
            log_event(logger, "call.rest_hangup", call_sid=self.call_sid, was_live=live)

    # ------------------------------------------------------------------ agent socket

    async def _run_agent(self, agent_id: str) -> None:
        s = self.session
        services = self.services
        try:
            sock = await services.connector.connect(agent_id)
        except PlatformApiError as e:
            kind = connect_error_kind(e)
            services.metrics.upstream_errors_total.labels(kind).inc()
            services.upstream.failed(kind)
            s.agent_closed(None, str(e))
            self._pump()
            return
        services.upstream.ok()
        self._agent = sock
        s.agent_connected()
        self._pump()
        sock.attach(_AgentSide(self))  # messages that came meanwhile are delivered now

    def agent_text(self, raw: str | bytes) -> None:
        s = self.session
        try:
            msg = parse_server(raw)
        except ConvaiProtocolError as e:
            s.agent_garbage(e)
            self._pump()
            return
        cls = type(msg)
        if cls is Audio:
            if self._sampler.due():  # follow this event's first frame to the Twilio socket
                self._sampler.follow(s.to_twilio, lambda: s.agent_message(msg))
                self._pump()
                return
        elif cls is Ping:
            assert isinstance(msg, Ping)
            if msg.ping_event.ping_ms is not None:
                self.services.metrics.agent_ping_ms.observe(msg.ping_event.ping_ms)
        s.agent_message(msg)
        self._pump()

    def agent_gone(self, code: int, reason: str) -> None:
        self.session.agent_closed(code, reason)
        self._pump()

    def _flush_agent(self) -> None:
        q, sock = self.session.to_agent, self._agent
        if sock is not None and q.chars and sock.can_send:
            sock.send_texts(q.take_all())

    async def _run_tool(self, action: RunTool) -> None:
        result, is_error = await self.services.tools.run(action.name, self, action.parameters)
        self.session.tool_finished(action.tool_call_id, result, is_error)
        self._pump()

    # ------------------------------------------------------------------ recording

    def _start_recording(self) -> None:
        s, services = self.session, self.services
        cfg = services.config
        if not (cfg.recording.enabled or (s.plan is not None and s.plan.record)):
            return
        path = recording_path(cfg.recording.directory(cfg.store.db), s.call_sid)
        if path is None:
            return
        try:
            self._recording = CallRecording(
                path, call_sid=s.call_sid, stream_sid=s.stream_sid, metrics=services.metrics
            )
        except OSError as e:  # no recording; the call goes on
            recording_open_failed(services.metrics, s.call_sid, path, e)

    def _end_recording(self) -> None:
        """The stream is over: nothing more is heard, finalise the file (idempotent)."""
        if self._recording is not None:
            self._recording.end()

    # ------------------------------------------------------------------ records, metrics

    def _record(self, fields: CallUpdate) -> None:
        store, sid = self.services.store, self.session.call_sid
        if store is None or not sid:
            return
        try:
            if self._recorded:
                store.update_call(sid, **fields)
                return
            self._recorded = True
            if self.services.calls.claim_expected(sid):
                store.update_call(sid, **fields)
            else:  # a stream the webhook did not announce (e.g. an operator's own TwiML)
                store.record_call(CallRecord(call_sid=sid, **fields))
        except BridgeError as e:
            log_event(logger, "call.record_failed", logging.ERROR, call_sid=sid, error=str(e))

    def _observe(self, done: Finished) -> None:
        m, s = self.services.metrics, done.summary
        if s.refused is not None:
            m.stream_refused_total.labels(s.refused).inc()
        if done.reason is EndReason.STREAM_REFUSED:
            return  # not a call: nothing was relayed, and its claims are not believed
        outcome = "ok" if done.reason in _CLEAN_REASONS else "error"
        m.calls_total.labels(outcome, done.reason.value).inc()
        if s.first_audio_ms is not None:
            m.first_audio_seconds.observe(s.first_audio_ms / 1000)
        for stage, seconds in self.session.turns.observations():
            m.turn_latency_seconds.labels(stage).observe(seconds)
        if s.agent_failure in ("closed_abnormally", "idle_timeout"):  # mid-call failures
            m.upstream_errors_total.labels(s.agent_failure).inc()
        frames = s.frames
        m.frames_total.labels(FROM_CALLER).inc(frames.from_caller)
        m.frames_total.labels(TO_AGENT).inc(frames.to_agent)
        m.frames_total.labels(FROM_AGENT).inc(frames.from_agent)
        m.frames_total.labels(TO_CALLER).inc(frames.to_caller)
        if s.bad_twilio_frames:
            m.bad_frames_total.labels("twilio").inc(s.bad_twilio_frames)
        if s.bad_agent_frames:
            m.bad_frames_total.labels("agent").inc(s.bad_agent_frames)
        m.interruptions_total.inc(s.interruptions)
        m.dropped_audio_total.labels("stale").inc(s.stale_dropped)
        m.dropped_audio_total.labels("backpressure").inc(s.shed_to_caller + s.shed_to_agent)
        m.audio_bytes_total.labels("caller_to_agent").inc(s.bytes_in)
        m.audio_bytes_total.labels("agent_to_caller").inc(s.bytes_out)


class _CallerSide:
    """The Twilio socket's sink.  A bug while handling a message ends this call only."""

    def __init__(self, driver: CallDriver) -> None:
        self.driver = driver

    def on_text(self, text: str) -> None:
        try:
            self.driver.caller_text(text)
        except Exception as e:
            self.driver._crashed("twilio-reader", e)
            self.driver.twilio.close(INTERNAL_ERROR)

    def on_binary(self, data: bytes) -> None:
        self.driver.caller_binary()

    def on_writable(self) -> None:
        self.driver._pump()

    def on_closed(self, code: int, reason: str) -> None:
        self.driver.caller_closed()


class _AgentSide:
    """The agent socket's sink."""

    def __init__(self, driver: CallDriver) -> None:
        self.driver = driver

    def on_text(self, text: str | bytes) -> None:
        try:
            self.driver.agent_text(text)
        except Exception as e:
            self.driver._crashed("agent-reader", e)
            if self.driver._agent is not None:
                self.driver._agent.close(INTERNAL_ERROR)

    def on_binary(self, data: bytes) -> None:
        self.on_text(data)  # the parser reads JSON from either frame type

    def on_writable(self) -> None:
        self.driver._pump()

    def on_closed(self, code: int, reason: str) -> None:
        self.driver.agent_gone(code, reason)
