"""A toy bridge for the emulator's tests: the least a server must do to take a call.

It answers the voice webhook with ``<Connect action><Stream>`` and, on the stream, plays
a fixed dialogue (``dialogue`` mode: audio+mark "a", after its echo audio+mark "b", a
``clear`` on DTMF, then audio+mark "c" and a close), or just listens (``hold``).  It
checks every signature with Twilio's own ``RequestValidator`` and every frame with the
pure Media Streams core, and records what it saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

from bridge.twilio import media as m

TOKEN = "toy-auth-token"
A = bytes(range(256)) * 15 + bytes(range(160))  # 4000 bytes = 0.5 s
B = bytes(reversed(range(256))) * 125  # 32000 bytes = 4 s
C = b"\x10" * 800  # 0.1 s


@dataclass
class Toy:
    """What the toy bridge saw."""

    mode: str = "dialogue"  # dialogue | hold (plays nothing, waits for stop)
    public_base: str | None = None  # the URL the toy believes Twilio reaches it at
    webhook_params: list[dict[str, str]] = field(default_factory=list)
    signatures_ok: list[bool] = field(default_factory=list)
    received: list[m.TwilioMessage] = field(default_factory=list)
    stream: m.MediaStream = field(default_factory=m.MediaStream)
    callbacks: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    upgrade_ok: bool | None = None
    closed_by_toy: bool = False
    closed: bool = False  # the caller's side of the last stream went away
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self) -> None:
        self.changed.set()

    async def wait_until(self, pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait (bounded) until ``pred()`` holds; re-checked whenever the toy sees something."""
        async with asyncio.timeout(timeout_s):
            while not pred():
                self.changed.clear()
                await self.changed.wait()


def toy_app(toy: Toy, token: str = TOKEN) -> Starlette:
    validator = RequestValidator(token)

    def http_url(request: Request) -> str:
        # What Twilio called: the public URL when the toy has one (as a real bridge
        # configured with a public URL does), not what the socket says.
        return toy.public_base + request.url.path if toy.public_base else str(request.url)

    def ws_url(netloc: str) -> str:
        if toy.public_base:
            return "wss://" + toy.public_base.split("://", 1)[1] + "/twilio/media"
        return f"ws://{netloc}/twilio/media"

    async def voice(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        ok = validator.validate(
            http_url(request), form, request.headers.get("X-Twilio-Signature", "")
        )
        toy.signatures_ok.append(ok)
        if not ok:
            return Response("bad signature", 403)
        toy.webhook_params.append(form)
        r = VoiceResponse()
        c = Connect(action="/twilio/after")
        s = c.stream(
            url=ws_url(request.url.netloc),
            status_callback="/twilio/stream-status",
        )
        s.parameter(name="agent_id", value="abc")
        r.append(c)
        return Response(str(r), media_type="text/xml")

    async def after(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        toy.signatures_ok.append(
            validator.validate(
                http_url(request), form, request.headers.get("X-Twilio-Signature", "")
            )
        )
        return Response("<Response><Say>Goodbye</Say><Hangup/></Response>", media_type="text/xml")

    async def callback(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        toy.signatures_ok.append(
            validator.validate(
                http_url(request), form, request.headers.get("X-Twilio-Signature", "")
            )
        )
        toy.callbacks.append((request.url.path, form))
        toy.touch()
        return Response(status_code=204)

    async def media(ws: WebSocket) -> None:
        url = ws_url(ws.url.netloc)
        toy.upgrade_ok = validator.validate(url, {}, ws.headers.get("x-twilio-signature", ""))
        if not toy.upgrade_ok:
            await ws.close(1008)
            return
        await ws.accept()
        toy.stream, toy.received = m.MediaStream(), []  # one stream per connection
        toy.closed = False
        sid = ""
        b_sent = False
        want_clear = False

        async def play(audio: bytes, mark: str) -> None:
            await ws.send_text(m.media_frame(sid, m.encode_payload(audio)))
            await ws.send_text(m.encode(m.OutMark(sid, m.MarkBody(mark))))

        try:
            while True:
                msg = toy.stream.receive(m.parse_from_twilio(await ws.receive_text()))
                toy.received.append(msg)
                toy.touch()
                if toy.mode == "hold":
                    continue
                if isinstance(msg, m.Start):
                    sid = msg.streamSid
                    await play(A, "a")
                elif isinstance(msg, m.Mark) and msg.mark.name == "a":
                    await play(B, "b")
                    b_sent = True
                    if want_clear:
                        await ws.send_text(m.encode(m.Clear(sid)))
                elif isinstance(msg, m.Dtmf):
                    if b_sent:
                        await ws.send_text(m.encode(m.Clear(sid)))
                    else:
                        want_clear = True
                elif isinstance(msg, m.Mark) and msg.mark.name == "b":
                    await play(C, "c")
                elif isinstance(msg, m.Mark) and msg.mark.name == "c":
                    toy.closed_by_toy = True
                    await ws.close(1000)
                    return
        except WebSocketDisconnect:
            toy.closed = True
            toy.touch()
            return

    return Starlette(
        routes=[
            Route("/twilio/voice", voice, methods=["POST"]),
            Route("/twilio/after", after, methods=["POST"]),
            Route("/twilio/status", callback, methods=["POST"]),
            Route("/twilio/stream-status", callback, methods=["POST"]),
            Route("/twilio/amd", callback, methods=["POST"]),
            WebSocketRoute("/twilio/media", media),
        ]
    )
