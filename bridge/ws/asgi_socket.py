"""The :class:`~bridge.ws.socket.MessageSocket` API over a plain ASGI WebSocket.

Used when the app runs under a server without the ``bridge.direct`` extension (another
ASGI server, a test client): the same sink is fed by a reader task and sends go through
a writer task.  Slower per message than :mod:`bridge.ws.server`, identical in meaning.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.ws.socket import ABNORMAL, MessageSink


class AsgiSocket:
    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._out: list[str] = []
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._closing = False
        self._done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def can_send(self) -> bool:
        return not self._closing and not self._done.is_set()

    @property
    def closed(self) -> bool:
        return self._done.is_set()

    def attach(self, sink: MessageSink) -> None:
        self._tasks = [
            asyncio.create_task(self._read(sink), name="asgi-reader"),
            asyncio.create_task(self._write(), name="asgi-writer"),
        ]

    def send_texts(self, texts: list[str]) -> bool:
        if not self.can_send:
            return False
        self._out.extend(texts)
        self._wake.set()
        return True

    def send_text(self, text: str) -> bool:
        return self.send_texts([text])

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closing or self._done.is_set():
            return
        self._closing = True
        self._close = (code, reason)
        self._wake.set()

    async def wait_closed(self) -> None:
        try:
            await self._done.wait()
        finally:
            if self._done.is_set():
                for t in self._tasks:
                    t.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _read(self, sink: MessageSink) -> None:
        code, reason = ABNORMAL, ""
        try:
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    code = message.get("code", ABNORMAL)
                    reason = message.get("reason") or ""
                    break
                if self._closing:
                    continue
                text = message.get("text")
                if text is not None:
                    sink.on_text(text)
                else:
                    sink.on_binary(message.get("bytes") or b"")
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            if self.close_code is None:
                self.close_code, self.close_reason = code, reason
            self._done.set()
            sink.on_closed(code, reason)

    async def _write(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._out:
                    await self._ws.send_text(self._out.pop(0))
                if self._close is not None:
                    await self._ws.close(*self._close)
                    return
