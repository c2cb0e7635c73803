"""The stream adapter's ends and echoes: who closed, with what code, and nothing after a stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.asgi import RunningServer, running_server
from bridge.emulator.twilio.caller import CallSpec, SyntheticCall
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.twiml import Say
from bridge.twilio import media as m

SPEED = 5.0


class Media:
    """A media endpoint that records what it got and does what ``after_start`` says."""

    def __init__(
        self, after_start: Callable[[WebSocket, str], Awaitable[bool]] | None = None
    ) -> None:
        self.after_start = after_start
        self.received: list[m.TwilioMessage] = []
        self.close_code: int | None = None
        self.changed = asyncio.Event()

    async def endpoint(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                msg = m.parse_from_twilio(await ws.receive_text())
                self.received.append(msg)
                self.changed.set()
                after = self.after_start
                if isinstance(msg, m.Start) and after and await after(ws, msg.streamSid):
                    return
        except WebSocketDisconnect as e:
            self.close_code = e.code
            self.changed.set()

    async def wait_until(self, pred: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not pred():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def serving(media: Media) -> AsyncIterator[RunningServer]:
    app = Starlette(routes=[WebSocketRoute("/media", media.endpoint)])
    async with running_server(app) as server:
        yield server


def _call(server: RunningServer) -> SyntheticCall:
    twiml = (
        f'<Response><Connect><Stream url="{server.ws_url}/media"/></Connect>'
        "<Say>after</Say></Response>"
    )
    return SyntheticCall(
        CallSpec(to="+15550001111", from_="+15550002222", twiml=twiml, speed=SPEED)
    )


async def test_the_bridges_close_code_is_recorded_and_the_twiml_goes_on() -> None:
    async def close(ws: WebSocket, sid: str) -> bool:
        await ws.close(4000, "bye")
        return True

    async with serving(Media(close)) as server:
        res = await _call(server).run()
    stream = res.stream
    assert stream is not None and (stream.ended_by, stream.close_code) == ("bridge", 4000)
    assert stream.error is None and stream.ended_at is not None
    assert res.outcome is Outcome.COMPLETED and isinstance(res.experience[-1], Say)


async def test_a_mark_with_nothing_buffered_is_echoed_at_once() -> None:
    async def mark(ws: WebSocket, sid: str) -> bool:
        await ws.send_text(m.encode(m.OutMark(sid, m.MarkBody("now"))))
        return False

    media = Media(mark)
    async with serving(media) as server:
        call = _call(server)
        task = asyncio.create_task(call.run())
        await media.wait_until(lambda: any(isinstance(x, m.Mark) for x in media.received))
        call.hang_up()
        res = await task
    stream = res.stream
    assert stream is not None
    (echo,) = stream.marks
    assert (echo.name, echo.cleared, echo.echoed) == ("now", False, echo.received)
    sent = [(s.event, s.detail) for s in stream.sent]
    assert sent == [("connected", ""), ("start", ""), ("mark", "now"), ("stop", "")]
    # The bridge got the echo with the sequence number the record says.
    (got,) = [x for x in media.received if isinstance(x, m.Mark)]
    assert got.sequenceNumber == str(stream.sent[2].seq)


@pytest.mark.parametrize("by", ["rest", "caller"])
async def test_no_frame_goes_out_after_a_hang_up(by: str) -> None:
    media = Media()
    async with serving(media) as server:
        call = _call(server)
        task = asyncio.create_task(call.run())
        await media.wait_until(lambda: sum(isinstance(x, m.Media) for x in media.received) >= 3)
        hung_up_at = call.clock.now()
        call.hang_up(by=by)
        res = await task
        await media.wait_until(lambda: media.close_code is not None)
    stream = res.stream
    assert stream is not None and (stream.ended_by, stream.close_code) == (by, 1000)
    assert stream.frames and all(f.t <= hung_up_at for f in stream.frames)
    assert stream.sent[-1].event == "stop" and stream.sent[-1].t >= hung_up_at
    assert isinstance(media.received[-1], m.Stop) and media.close_code == 1000
    frames = [x for x in media.received if isinstance(x, m.Media)]
    assert len(frames) == len(stream.frames)
    assert [x.media.chunk for x in frames] == [str(k + 1) for k in range(len(frames))]
