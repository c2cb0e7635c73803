"""A webhook receiver on loopback: a Starlette app under uvicorn that answers per plan.

Each request takes the next answer of ``plan`` (else ``default``): ``"ok"`` (204),
``"fail"`` (500) or ``"hang"`` (answers nothing until :attr:`Receiver.release` is set,
at the latest when the fixture ends).  Every request is kept, with the status it got.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.asgi import running_server

Mode = Literal["ok", "fail", "hang"]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    mode: Mode
    answered: int | None = None  # the status sent; None while hanging


@dataclass
class Receiver:
    url: str = ""
    default: Mode = "ok"
    plan: deque[Mode] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        mode = self.plan.popleft() if self.plan else self.default
        got = Received({k.lower(): v for k, v in request.headers.items()}, body, mode)
        self.received.append(got)
        if mode == "hang":
            await self.release.wait()
        got.answered = 204 if mode == "ok" else 500
        return Response(status_code=got.answered)

    def of(self, delivery_id: str) -> list[Received]:
        return [r for r in self.received if r.headers.get("bridge-delivery") == delivery_id]


@contextlib.asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    async with running_server(app) as server:
        receiver.url = server.http_url + "/hook"
        try:
            yield receiver
        finally:
            receiver.release.set()  # hanging requests end, so the server can stop
