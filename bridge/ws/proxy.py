"""A TCP tunnel to a WebSocket server through an HTTP(S) proxy's ``CONNECT``.

Which proxy, and whether at all, is websockets' public ``get_proxy``/``parse_proxy``
(the ``*_proxy``/``no_proxy`` environment); the request, the proxy's answer and its
errors are this module's, in websockets' exception types: ``InvalidProxyStatus`` for a
refusal, ``InvalidProxyMessage`` for an answer that is not HTTP, ``ProxyError`` for a
SOCKS proxy (not supported).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from typing import cast

from websockets.datastructures import Headers
from websockets.exceptions import InvalidProxyMessage, InvalidProxyStatus, ProxyError
from websockets.http11 import Response
from websockets.proxy import parse_proxy
from websockets.uri import WebSocketURI

MAX_ANSWER = 16384  # bytes of status line and headers a proxy may send


class _ConnectAnswer(asyncio.Protocol):
    """Reads the proxy's answer to our ``CONNECT``; nothing else is read here."""

    def __init__(self, request: bytes) -> None:
        self._request = request
        self._buf = b""
        self.answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(self._request)

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_ANSWER:
                self._fail("the proxy's answer is too long")
            return
        status_line, _, header_lines = self._buf[:end].decode("latin-1").partition("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            self._fail("did not receive a valid HTTP response from proxy")
            return
        status = int(code)
        if 200 <= status < 300:
            self.answer.set_result(None)
            return
        headers = Headers()
        for line in header_lines.split("\r\n") if header_lines else []:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip()] = value.strip()
        self.answer.set_exception(InvalidProxyStatus(Response(status, reason, headers)))

    def eof_received(self) -> bool:
        self._fail("the proxy closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail("the proxy closed the connection")

    def _fail(self, why: str) -> None:
        if not self.answer.done():
            self.answer.set_exception(InvalidProxyMessage(why))


def connect_request(
    wsuri: WebSocketURI, user_agent: str | None, username: str | None, password: str | None
) -> bytes:
    host = f"[{wsuri.host}]" if ":" in wsuri.host else wsuri.host
    authority = f"{host}:{wsuri.port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if user_agent is not None:
        lines.append(f"User-Agent: {user_agent}")
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_tunnel(
    proxy_url: str, wsuri: WebSocketURI, user_agent: str | None
) -> asyncio.Transport:
    """A connection through the proxy to the WebSocket server (TLS, if any, not started)."""
    proxy = parse_proxy(proxy_url)
    if proxy.scheme not in ("http", "https"):
        raise ProxyError(f"{proxy.scheme} proxies are not supported; use an HTTP(S) proxy")
    request = connect_request(wsuri, user_agent, proxy.username, proxy.password)
    tls = ssl.create_default_context() if proxy.scheme == "https" else None
    loop = asyncio.get_running_loop()
    answer = _ConnectAnswer(request)
    transport, _ = await loop.create_connection(
        lambda: answer,
        proxy.host,
        proxy.port,
        ssl=tls,
        server_hostname=proxy.host if tls is not None else None,
    )
    try:
        await answer.answer
    except BaseException:
        transport.abort()
        raise
    return transport
