"""Run an ASGI app on a loopback/listen address inside the current event loop.

One helper for every server we start in-process: the bridge in tests, the emulators
under ``bridge serve`` and ``bridge emulator``, the load generator's targets.  Binding
port 0 picks a free port; the bound port is reported back.

An internet-facing server (``bridge serve``) is given ``limits``: every connection then
goes through the edge guard (:mod:`bridge.edge`), idle keep-alive follows
``keepalive_timeout_s``, and permessage-deflate is not offered (Twilio never asks for
it; a client that negotiated it would leave the relay's fast path).  Without ``limits``
a server is uvicorn's as configured below (emulators, test peers, benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from bridge.edge.limits import EdgeLimits
from bridge.edge.protocol import Observe, edge_protocol
from bridge.ws.server import DirectWebSocketProtocol


class _EmbeddedServer(uvicorn.Server):
    # Signals belong to whoever owns the process (the CLI), not to an embedded server.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int
    server: uvicorn.Server

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"


# Our WebSocket protocol with the "bridge.direct" scope extension (bridge.ws.server), given
# to uvicorn as a class: its documented ws setting takes a name or a protocol class.
DIRECT_WS: type[asyncio.Protocol] = DirectWebSocketProtocol


def uvicorn_config(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    ws_max_size: int = 1 << 20,
    log_level: str = "warning",
    ws: str | type[asyncio.Protocol] = DIRECT_WS,
    limits: EdgeLimits | None = None,
    on_refusal: Observe | None = None,
) -> uvicorn.Config:
    edge: dict[str, Any] = {}
    if limits is not None:
        edge = {
            "http": edge_protocol(limits, observe=on_refusal),
            # uvicorn annotates int but only hands it to loop.call_later.
            "timeout_keep_alive": limits.keepalive_timeout_s,
            # Only used when h11 is the parser (no httptools); the guard counts anyway.
            "h11_max_incomplete_event_size": limits.max_header_bytes,
            "ws_per_message_deflate": False,
        }
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        ws=ws,
        ws_max_size=ws_max_size,
        # Twilio and the platform ping at the protocol level themselves; our own WS pings
        # would only add traffic on thousands of sockets.
        ws_ping_interval=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
        **edge,
    )


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (uvicorn listens on it)."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def running_server(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ws_max_size: int = 1 << 20,
    ws: str | type[asyncio.Protocol] = DIRECT_WS,
    limits: EdgeLimits | None = None,
    on_refusal: Observe | None = None,
    sock: socket.socket | None = None,
) -> AsyncIterator[RunningServer]:
    """Serve ``app`` until the block exits; yields where it listens.

    ``sock``: listen on this bound socket (uvicorn's documented ``sockets=``) instead of
    binding ``host:port``: the workers of ``bridge serve --workers N`` each bring one
    from :func:`reuse_port_socket`, and the kernel spreads new connections over them.
    """
    config = uvicorn_config(
        app, host, port, ws_max_size=ws_max_size, ws=ws, limits=limits, on_refusal=on_refusal
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
    try:
        while not server.started:
            if task.done():
                task.result()  # re-raise the start-up error
                raise RuntimeError("server exited during start-up")
            await asyncio.sleep(0.005)
        sock = server.servers[0].sockets[0]
        bound_port = sock.getsockname()[1]
        yield RunningServer(host, bound_port, server)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
