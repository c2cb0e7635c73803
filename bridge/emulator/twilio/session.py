"""One Media Stream as Twilio runs it, over a real WebSocket (the I/O adapter).

No task runs per stream and nothing is awaited per frame: the socket is a
:class:`~bridge.ws.client.ClientSocket` (messages in as synchronous callbacks, messages
out in one write) and the frames are sent by a chain of loop timers.

* the **sender** is the timer chain: frame ``k`` is due at ``start + k·20 ms`` of call
  time (the deadline comes from ``k``, never from the previous timer: no drift).  Each
  timer sends every frame due by now (a late loop catches up in a burst), each frame
  with the DTMF the :class:`~.script.ScriptRunner` presses with it and the mark echoes
  whose audio has played by then, in one write, and arms the timer of the next frame.
  While the bridge does not read (the socket's buffer is full) the chain pauses and
  resumes when it drained, so a frame is recorded when it really goes out;
* the **receiver** is the socket's ``on_text``: it parses what the server sends
  (strictly: a binary frame, bad JSON, an unknown event, a foreign ``streamSid`` or bad
  base64 ends the stream as an error), queues audio and marks on the
  :class:`~.playout.Playout`, and echoes at once the marks that are due at once
  (nothing buffered, or a ``clear``);
* the stream ends when the script hangs up or the call is interrupted (REST hang-up or
  redirect: :class:`Interrupts` wakes the stream at once): ``stop``, then close 1000;
  or when the bridge closes (its close code is recorded); or on a protocol error
  (close 1002).  :meth:`StreamSession.run` waits for that, then (bounded) for the
  socket to finish closing.

Audio still queued when the stream ends was never heard: Twilio does not play out its
buffer after the socket closes, so a bridge that closes before its goodbye has played
cuts it off, and the recording shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from websockets.exceptions import InvalidStatus, WebSocketException

from bridge.emulator.twilio.clock import CallClock, frame_due
from bridge.emulator.twilio.playout import MarkEcho
from bridge.emulator.twilio.records import Received, Sent, SentFrame, StreamRecord
from bridge.emulator.twilio.script import FRAME_BYTES, SILENCE_FRAME, ScriptRunner
from bridge.emulator.twilio.webhook import ws_upgrade_headers
from bridge.errors import TwilioProtocolError
from bridge.twilio import media as m
from bridge.ws.client import ClientSocket, open_socket

USER_AGENT = "Twilio.TmeWs/1.0"
CLOSE_WAIT_S = 2.5  # a bridge that never ends the TCP connection must not hold us
EARLY_S = 0.001  # wall seconds a timer may fire early (the loop's clock has 1 ms steps)
_SILENCE_B64 = m.encode_payload(SILENCE_FRAME)


@dataclass
class Interrupt:
    """Why the call (not the server) ends the stream."""

    kind: str  # caller | hangup | redirect
    reason: str


class Interrupts:
    """Set from outside the stream (REST update, caller hang-up); wakes the open stream."""

    def __init__(self) -> None:
        self.current: Interrupt | None = None
        self.event = asyncio.Event()
        self.wake: Callable[[], None] | None = None  # the open stream's, while it runs

    def set(self, kind: str, reason: str) -> None:
        if self.current is None or self.current.kind == "redirect":
            self.current = Interrupt(kind, reason)
        self.event.set()
        if self.wake is not None:
            self.wake()

    def take(self) -> Interrupt | None:
        it, self.current = self.current, None
        self.event.clear()
        return it


@dataclass(frozen=True)
class StreamIdentity:
    account_sid: str
    call_sid: str
    stream_sid: str


class StreamSession:
    """One stream: :meth:`run` it once; it fills ``record`` and never raises for I/O."""

    _loop: asyncio.AbstractEventLoop  # set by run()

    def __init__(
        self,
        record: StreamRecord,
        ident: StreamIdentity,
        *,
        clock: CallClock,
        runner: ScriptRunner,
        interrupts: Interrupts,
        auth_token: str | None,
        open_timeout_s: float = 10.0,
        max_message_bytes: int = 1 << 20,
    ) -> None:
        self.record = record
        self.ident = ident
        self.clock = clock
        self.runner = runner
        self.interrupts = interrupts
        self.auth_token = auth_token
        self.open_timeout_s = open_timeout_s
        self.max_message_bytes = max_message_bytes
        self.hung_up: str | None = None  # the script's hang-up reason, if it hung up
        self.on_started: Callable[[], None] | None = None  # after `start` went out
        self._seq = 0
        self._sock: ClientSocket | None = None
        self._ended = False
        self._done: asyncio.Future[None] | None = None  # resolved when the stream ends
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False  # the sender waits for the socket to drain
        self._k = 0  # the next frame to send
        self._start = 0.0  # call time of frame 0

    async def run(self) -> None:
        """Connect, stream until one side ends it; fills ``record``. Never raises for I/O."""
        rec = self.record
        try:
            sock = await open_socket(
                rec.connect_url,
                open_timeout_s=self.open_timeout_s,
                max_size=self.max_message_bytes,
                user_agent=USER_AGENT,
                headers=ws_upgrade_headers(rec.url, self.auth_token).items(),
                ping_interval_s=None,
                ping_timeout_s=None,
            )
        except InvalidStatus as e:
            self._fail("handshake", f"handshake refused: HTTP {e.response.status_code}")
            return
        except (OSError, TimeoutError, WebSocketException) as e:
            self._fail("handshake", f"connect failed: {type(e).__name__}: {e}")
            return
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._done = self._loop.create_future()
        try:
            self._begin(sock)
            await self._done
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_S):
                    await sock.wait_closed()
        finally:
            if not self._ended:  # cancelled: the call is over, so is the stream
                self._end()
                sock.close(1000)
                rec.close_code = 1000
            if rec.close_code is None:
                rec.close_code = sock.close_code

    # ------------------------------------------------------------------ start, end

    def _begin(self, sock: ClientSocket) -> None:
        rec = self.record
        sid = self.ident.stream_sid
        out: list[str] = []
        self._emit(out, m.encode(m.Connected()), "connected", 0)
        rec.started_at = self._start = self.clock.now()
        seq = self._take_seq()
        start = m.Start(
            sequenceNumber=str(seq),
            start=m.StartBody(
                streamSid=sid,
                callSid=self.ident.call_sid,
                accountSid=self.ident.account_sid,
                customParameters=dict(rec.custom_parameters),
            ),
            streamSid=sid,
        )
        self._emit(out, m.encode(start), "start", seq)
        sock.send_texts(out)
        if self.on_started is not None:
            self.on_started()
        self.interrupts.wake = self._woken
        sock.attach(self)  # messages (or a close) that came meanwhile are delivered now
        if not self._ended:
            self._send_due()  # frame 0 is due now

    def _end(self) -> None:
        """The stream is over now: stop sending; audio not played by now is never heard."""
        self._ended = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.interrupts.wake == self._woken:
            self.interrupts.wake = None
        rec = self.record
        rec.ended_at = end = self.clock.now()
        rec.playout.hang_up(end)
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _hang_up(self, out: list[str], ended_by: str) -> None:
        """The caller's side ends the stream: ``stop`` (after ``out``), then close 1000."""
        assert self._sock is not None
        rec = self.record
        seq = self._take_seq()
        stop = m.Stop(
            str(seq),
            m.StopBody(accountSid=self.ident.account_sid, callSid=self.ident.call_sid),
            self.ident.stream_sid,
        )
        rec.ended_by = ended_by
        self._emit(out, m.encode(stop), "stop", seq)
        self._sock.send_texts(out)
        self._sock.close(1000)
        rec.close_code = 1000
        self._end()

    def _woken(self) -> None:
        """An interrupt was set: handle it on the loop's next turn (not in the setter)."""
        self._loop.call_soon(self._check_interrupt)

    def _check_interrupt(self) -> bool:
        interrupt = self.interrupts.current
        if self._ended or interrupt is None:
            return False
        self._hang_up([], "caller" if interrupt.kind == "caller" else "rest")
        return True

    # ------------------------------------------------------------------ sender

    def _send_due(self) -> None:
        """Send every frame due by now (with its DTMF and due mark echoes); arm the next."""
        self._timer = None
        sock = self._sock
        if self._ended or sock is None:
            return
        if self._check_interrupt():
            return
        if not sock.can_send:
            self._paused = True  # on_writable resumes; on_closed ends
            return
        rec, clock, runner, playout = self.record, self.clock, self.runner, self.record.playout
        sid = self.ident.stream_sid
        frames, sent = rec.frames, rec.sent
        start, k = self._start, self._k
        now = clock.now()
        limit = now + EARLY_S * clock.speed
        out: list[str] = []
        while frame_due(start, k) <= limit:
            tick = runner.tick(now, playout.playing(now))
            for digit in tick.digits:
                seq = self._take_seq()
                dtmf = m.Dtmf(sid, str(seq), m.DtmfBody(digit))
                out.append(m.encode(dtmf))
                sent.append(Sent(now, "dtmf", seq, digit))
            if tick.hangup is not None:
                self._k = k
                self.hung_up = tick.hangup
                self._hang_up(out, "caller")
                return
            frame = tick.frame
            payload = _SILENCE_B64 if frame is SILENCE_FRAME else m.encode_payload(frame)
            self._seq += 1
            out.append(m.inbound_media_frame(sid, self._seq, k + 1, k * 20, payload))
            frames.append(SentFrame(now, k * FRAME_BYTES, len(frame)))
            due = playout.next_due()
            if due is not None and due <= now:
                self._echo(out, playout.due(now))
            k += 1
            now = clock.now()
        self._k = k
        sock.send_texts(out)
        self._timer = self._loop.call_at(clock.monotonic_at(frame_due(start, k)), self._send_due)

    def on_writable(self) -> None:
        if self._paused:
            self._paused = False
            self._send_due()

    # ------------------------------------------------------------------ receiver

    def on_text(self, text: str) -> None:
        if self._ended:
            return
        rec, playout = self.record, self.record.playout
        t = self.clock.now()
        try:
            msg = m.parse_from_server(text)
            if msg.streamSid != self.ident.stream_sid:
                raise TwilioProtocolError(
                    f"expected streamSid {self.ident.stream_sid}, got {msg.streamSid[:70]!r}"
                )
            if isinstance(msg, m.OutMedia):
                data = m.decode_payload(msg.media.payload)
                playout.push_audio(data, t)
                rec.received.append(Received(t, "media", "", len(data)))
                return
        except TwilioProtocolError as e:
            self._protocol_error(e)
            return
        out: list[str] = []
        if isinstance(msg, m.OutMark):
            rec.received.append(Received(t, "mark", name=msg.mark.name))
            playout.push_mark(msg.mark.name, t)
            self._echo(out, playout.due(t))
        else:
            rec.received.append(Received(t, "clear"))
            self._echo(out, playout.clear(t))
        if out:
            assert self._sock is not None
            self._sock.send_texts(out)

    def on_binary(self, data: bytes) -> None:
        if not self._ended:
            self._protocol_error(m.binary_frame_error())

    def on_closed(self, code: int, reason: str) -> None:
        if self._ended:
            return  # we ended it: the close is the answer to ours
        rec = self.record
        rec.ended_by = "bridge"
        rec.close_code = code
        self._end()

    def _protocol_error(self, e: TwilioProtocolError) -> None:
        # Strict on purpose: the emulator exists to catch bridges that misbehave.
        assert self._sock is not None
        rec = self.record
        rec.error = f"protocol error from server: {e.detail}"
        rec.ended_by = "error"
        rec.close_code = 1002
        self._end()
        self._sock.close(1002, "invalid message")

    # ------------------------------------------------------------------ helpers

    def _echo(self, out: list[str], echoes: list[MarkEcho]) -> None:
        for echo in echoes:
            self.record.marks.append(echo)
            seq = self._take_seq()
            mark = m.Mark(str(seq), self.ident.stream_sid, m.MarkBody(echo.name))
            self._emit(out, m.encode(mark), "mark", seq, echo.name)

    def _take_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _emit(self, out: list[str], frame: str, event: str, seq: int, detail: str = "") -> None:
        """Queue a non-media message on ``out``; the record's order is the wire order."""
        self.record.sent.append(Sent(self.clock.now(), event, seq, detail))
        out.append(frame)

    def _fail(self, ended_by: str, error: str) -> None:
        rec = self.record
        rec.error = error
        rec.ended_by = ended_by
        rec.ended_at = self.clock.now()
