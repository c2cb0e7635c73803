"""One Media Stream as Twilio runs it, over a real WebSocket (the I/O adapter).

Two tasks per stream and nothing per frame beyond a slice, a base64 and a send:

* the **sender** wakes at each frame's due time (``start + k·20 ms`` of call time: no
  drift), asks the :class:`~.script.ScriptRunner` for the frame, sends any DTMF, the
  ``media`` frame and the mark echoes whose audio has played by now; it also ends the
  stream when the script hangs up or the call is interrupted (``stop``, then close);
* the **receiver** parses what the server sends (strictly: a binary frame, bad JSON, an
  unknown event, a foreign ``streamSid`` or bad base64 ends the stream as an error),
  queues audio and marks on the :class:`~.playout.Playout`, and echoes at once the
  marks that are due at once (nothing buffered, or a ``clear``).

Audio still queued when the stream ends was never heard: Twilio does not play out its
buffer after the socket closes, so a bridge that closes before its goodbye has played
cuts it off, and the recording shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from bridge.emulator.twilio.clock import CallClock
from bridge.emulator.twilio.playout import MarkEcho
from bridge.emulator.twilio.records import Received, Sent, SentFrame, StreamRecord
from bridge.emulator.twilio.script import FRAME_BYTES, FRAME_S, ScriptRunner
from bridge.emulator.twilio.webhook import ws_upgrade_headers
from bridge.errors import TwilioProtocolError
from bridge.twilio import media as m


@dataclass
class Interrupt:
    """Why the call (not the server) ends the stream."""

    kind: str  # hangup | redirect
    reason: str


class Interrupts:
    """Set from outside the stream (REST update, caller hang-up); polled every frame."""

    def __init__(self) -> None:
        self.current: Interrupt | None = None
        self.event = asyncio.Event()

    def set(self, kind: str, reason: str) -> None:
        if self.current is None or self.current.kind == "redirect":
            self.current = Interrupt(kind, reason)
        self.event.set()

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
        self._ws: ClientConnection | None = None
        self._server_gone = False
        self._gone_at: float | None = None  # when the receiver saw the socket end

    async def run(self) -> None:
        """Connect, stream until one side ends it; fills ``record``. Never raises for I/O."""
        rec = self.record
        try:
            ws = await connect(
                rec.connect_url,
                additional_headers=ws_upgrade_headers(rec.url, self.auth_token),
                user_agent_header="Twilio.TmeWs/1.0",
                compression=None,
                proxy=None,
                open_timeout=self.open_timeout_s,
                ping_interval=None,
                close_timeout=2.0,  # a bridge that never answers the close must not hold us
                max_size=self.max_message_bytes,
            )
        except InvalidStatus as e:
            self._fail("handshake", f"handshake refused: HTTP {e.response.status_code}")
            return
        except (OSError, TimeoutError, WebSocketException) as e:
            self._fail("handshake", f"connect failed: {type(e).__name__}: {e}")
            return
        self._ws = ws
        try:
            await self._send(m.encode(m.Connected()), "connected", 0)
            rec.started_at = self.clock.now()
            seq = self._take_seq()
            start = m.Start(
                sequenceNumber=str(seq),
                start=m.StartBody(
                    streamSid=self.ident.stream_sid,
                    callSid=self.ident.call_sid,
                    accountSid=self.ident.account_sid,
                    customParameters=dict(rec.custom_parameters),
                ),
                streamSid=self.ident.stream_sid,
            )
            await self._send(m.encode(start), "start", seq)
            if self.on_started is not None:
                self.on_started()
            receiver = asyncio.create_task(self._receive(ws))
            try:
                await self._send_loop(ws, rec.started_at)
            finally:
                if not receiver.done():
                    receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver
        except ConnectionClosed:
            self._server_gone = True
            rec.ended_by = rec.ended_by or "bridge"
        finally:
            # Playout stops when the socket ended, not at the sender's next tick.
            end = self._gone_at if self._gone_at is not None else self.clock.now()
            rec.ended_at = end
            rec.playout.hang_up(end)
            with contextlib.suppress(Exception):
                await ws.close()
            if rec.close_code is None:
                rec.close_code = ws.close_code

    # ------------------------------------------------------------------ sender

    async def _send_loop(self, ws: ClientConnection, start: float) -> None:
        rec, clock, runner, playout = self.record, self.clock, self.runner, self.record.playout
        sid = self.ident.stream_sid
        k = 0
        while True:
            await clock.sleep_until(start + k * FRAME_S)
            if self._server_gone:
                rec.ended_by = rec.ended_by or "bridge"
                return
            interrupt = self.interrupts.current
            if interrupt is not None:
                await self._stop(ws, "caller" if interrupt.kind == "caller" else "rest")
                return
            now = clock.now()
            tick = runner.tick(now, playout.playing(now))
            for digit in tick.digits:
                seq = self._take_seq()
                dtmf = m.Dtmf(sid, str(seq), m.DtmfBody(digit))
                await self._send(m.encode(dtmf), "dtmf", seq, digit)
            if tick.hangup is not None:
                self.hung_up = tick.hangup
                await self._stop(ws, "caller")
                return
            payload = m.encode_payload(tick.frame)
            # seq/chunk/timestamp are assigned and sent with no await in between, so the
            # receiver's mark echoes cannot slip in out of sequence.
            await ws.send(m.inbound_media_frame(sid, self._take_seq(), k + 1, k * 20, payload))
            rec.frames.append(SentFrame(now, k * FRAME_BYTES, len(tick.frame)))
            await self._echo(playout.due(now))
            k += 1

    async def _stop(self, ws: ClientConnection, ended_by: str) -> None:
        rec = self.record
        seq = self._take_seq()
        stop = m.Stop(
            str(seq),
            m.StopBody(accountSid=self.ident.account_sid, callSid=self.ident.call_sid),
            self.ident.stream_sid,
        )
        rec.ended_by = ended_by
        with contextlib.suppress(ConnectionClosed):
            await self._send(m.encode(stop), "stop", seq)
            await ws.close(1000)
        rec.close_code = 1000

    # ------------------------------------------------------------------ receiver

    async def _receive(self, ws: ClientConnection) -> None:
        rec, clock, playout = self.record, self.clock, self.record.playout
        sid = self.ident.stream_sid
        try:
            async for raw in ws:
                t = clock.now()
                if isinstance(raw, bytes):
                    raise m.binary_frame_error()
                msg = m.parse_from_server(raw)
                if msg.streamSid != sid:
                    raise TwilioProtocolError(
                        f"expected streamSid {sid}, got {msg.streamSid[:70]!r}"
                    )
                if isinstance(msg, m.OutMedia):
                    data = m.decode_payload(msg.media.payload)
                    playout.push_audio(data, t)
                    rec.received.append(Received(t, "media", size=len(data)))
                elif isinstance(msg, m.OutMark):
                    rec.received.append(Received(t, "mark", name=msg.mark.name))
                    playout.push_mark(msg.mark.name, t)
                    await self._echo(playout.due(t))
                else:
                    rec.received.append(Received(t, "clear"))
                    await self._echo(playout.clear(t))
        except TwilioProtocolError as e:
            # Strict on purpose: the emulator exists to catch bridges that misbehave.
            rec.error = f"protocol error from server: {e.detail}"
            rec.ended_by = "error"
            rec.close_code = 1002
            self._gone_at = clock.now()
            self._server_gone = True
            with contextlib.suppress(ConnectionClosed):
                await ws.close(1002, "invalid message")
            return
        except ConnectionClosed:
            pass
        self._gone_at = clock.now()
        if not rec.ended_by:
            rec.ended_by = "bridge"
            rec.close_code = ws.close_code
        self._server_gone = True

    # ------------------------------------------------------------------ helpers

    async def _echo(self, echoes: list[MarkEcho]) -> None:
        for echo in echoes:
            self.record.marks.append(echo)
            seq = self._take_seq()
            mark = m.Mark(str(seq), self.ident.stream_sid, m.MarkBody(echo.name))
            await self._send(m.encode(mark), "mark", seq, echo.name)

    def _take_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def _send(self, frame: str, event: str, seq: int, detail: str = "") -> None:
        # Recorded before the await: the record's order is the wire order.
        assert self._ws is not None
        self.record.sent.append(Sent(self.clock.now(), event, seq, detail))
        await self._ws.send(frame)

    def _fail(self, ended_by: str, error: str) -> None:
        rec = self.record
        rec.error = error
        rec.ended_by = ended_by
        rec.ended_at = self.clock.now()
