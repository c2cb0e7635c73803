"""The floor under the bridge's CPU per call-second on this machine: a relay doing nothing.

Three processes on loopback, shaped like ``bridge loadtest`` with a loopback agent:
callers send a 900-byte message every 20 ms; the *relay* forwards each one to its
agent connection; the agent echoes it at once; the relay forwards the echo back to the
caller, and every fifth message also sends a 60-byte "mark" that the caller answers.
That is the bridge's message pattern (110 reads and 100 writes per call-second) with no
parsing, no WebSocket framing, no audio and no session: uvloop, ``asyncio.Protocol``
callbacks and ``transport.write`` only.  Whatever this relay costs per call-second is
what the kernel and the event loop charge for the traffic alone.

    uv run python bench/relay_floor.py --calls 20,100 --seconds 20
    uv run python bench/relay_floor.py --ws ...   # the same over bridge.ws WebSockets
    uv run python bench/relay_floor.py --ws --edge ...   # ... behind bridge serve's edge

With ``--ws`` every hop is a WebSocket as in the bridge: the relay is a uvicorn server
with ``bridge.ws``'s protocol class (the callers' sockets) and ``bridge.ws`` client
sockets to the agent (a ``bridge.ws`` server too); the relay still only forwards text.
The difference from the plain run is what the WebSocket layers cost.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from bridge.asgi import running_server
from bridge.edge.limits import EdgeLimits
from bridge.ws.client import open_socket
from bridge.ws.server import direct_socket

MSG = 900
MARK = b"m" * 60
MARK_TEXT = MARK.decode()
FRAME_S = 0.02


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- agent (echo)


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.t.write(data)  # type: ignore[attr-defined]


def agent_main(port_q: mp.Queue[int], ws: bool) -> None:
    async def main() -> None:
        if ws:
            async with running_server(_ws_app(_echo_ws)) as srv:
                port_q.put(srv.port)
                await asyncio.Event().wait()
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    uvloop.run(main())


# ---------------------------------------------------------------------- WebSocket mode


class _Sink:
    def __init__(self, on_text: Callable[[str], None]) -> None:
        self.on_text = on_text
        self.closed = asyncio.Event()

    def on_binary(self, data: bytes) -> None:
        pass

    def on_writable(self) -> None:
        pass

    def on_closed(self, code: int, reason: str) -> None:
        self.closed.set()


def _ws_app(handler: Callable[[WebSocket], Awaitable[None]]) -> Starlette:
    return Starlette(routes=[WebSocketRoute("/", handler)])


async def _echo_ws(ws: WebSocket) -> None:
    await ws.accept()
    sock = direct_socket(ws.scope)
    assert sock is not None
    sink = _Sink(lambda text: sock.send_texts([text]))
    sock.attach(sink)
    await sink.closed.wait()


def _relay_ws(agent_port: int) -> Callable[[WebSocket], Awaitable[None]]:
    async def relay(ws: WebSocket) -> None:
        await ws.accept()
        caller = direct_socket(ws.scope)
        assert caller is not None
        agent = await open_socket(f"ws://127.0.0.1:{agent_port}/")
        n = 0

        def from_agent(text: str) -> None:
            nonlocal n
            n += 1
            caller.send_texts([text, MARK_TEXT] if n % 5 == 0 else [text])

        def from_caller(text: str) -> None:
            if len(text) >= MSG:  # a mark echo: nothing to forward
                agent.send_texts([text])

        agent.attach(_Sink(from_agent))
        sink = _Sink(from_caller)
        caller.attach(sink)
        await sink.closed.wait()
        agent.close()

    return relay


# ---------------------------------------------------------------------- relay


class CallerSide(asyncio.Protocol):
    def __init__(self, agent_port: int) -> None:
        self.agent_port = agent_port
        self.agent: asyncio.Transport | None = None
        self.early: list[bytes] = []
        self.n = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        loop = asyncio.get_running_loop()
        self.connecting = loop.create_task(self._connect(loop))

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        caller = self

        class AgentSide(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                caller.n += 1
                if caller.n % 5 == 0:
                    caller.t.write(data + MARK)  # type: ignore[attr-defined]
                else:
                    caller.t.write(data)  # type: ignore[attr-defined]

        t, _ = await loop.create_connection(AgentSide, "127.0.0.1", self.agent_port)
        self.agent = t
        for d in self.early:
            t.write(d)

    def data_received(self, data: bytes) -> None:
        if len(data) < MSG:  # a mark echo: nothing to forward
            return
        if self.agent is None:
            self.early.append(data)
        else:
            self.agent.write(data)


def relay_main(agent_port: int, port_q: mp.Queue[int], ws: bool, edge: bool = False) -> None:
    async def main() -> None:
        if ws:
            limits = EdgeLimits() if edge else None  # bridge serve's guard (bridge.edge)
            async with running_server(_ws_app(_relay_ws(agent_port)), limits=limits) as srv:
                port_q.put(srv.port)
                await asyncio.Event().wait()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: CallerSide(agent_port), "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    uvloop.run(main())


# ---------------------------------------------------------------------- callers


class _WsCaller:
    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.text = "a" * MSG

    def write(self, payload: bytes) -> None:
        self.sock.send_texts([self.text])

    def close(self) -> None:
        self.sock.close()


class Caller(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        if data.endswith(MARK):
            self.t.write(MARK)  # type: ignore[attr-defined]


async def run_callers(port: int, calls: int, seconds: float, ws: bool) -> None:
    loop = asyncio.get_running_loop()
    payload = b"a" * MSG
    transports: list[Any] = []
    for _ in range(calls):
        if ws:
            sock = await open_socket(f"ws://127.0.0.1:{port}/")

            def answer(text: str, sock: Any = sock) -> None:
                if text == MARK_TEXT:
                    sock.send_texts([MARK_TEXT])

            sock.attach(_Sink(answer))
            transports.append(_WsCaller(sock))
        else:
            t, _ = await loop.create_connection(Caller, "127.0.0.1", port)
            transports.append(t)
    start = loop.time()
    frames = int(seconds / FRAME_S)

    def tick(i: int, k: int) -> None:
        if k >= frames:
            return
        transports[i].write(payload)
        loop.call_at(start + (k + 1) * FRAME_S + i * FRAME_S / calls, tick, i, k + 1)

    for i in range(calls):
        loop.call_at(start + i * FRAME_S / calls, tick, i, 0)
    await asyncio.sleep(seconds + 0.5)
    for t in transports:
        t.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", default="20,100")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--ws", action="store_true", help="every hop a bridge.ws WebSocket")
    ap.add_argument("--edge", action="store_true", help="with --ws: the relay behind bridge.edge")
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    q: mp.Queue[int] = ctx.Queue()
    agent = ctx.Process(target=agent_main, args=(q, a.ws), daemon=True)
    agent.start()
    agent_port = q.get(timeout=10)
    relay = ctx.Process(target=relay_main, args=(agent_port, q, a.ws, a.edge), daemon=True)
    relay.start()
    relay_port = q.get(timeout=10)
    try:
        for calls in (int(c) for c in a.calls.split(",")):
            r0, e0, c0 = cpu_s(relay.pid), cpu_s(agent.pid), time.process_time()  # type: ignore[arg-type]
            uvloop.run(run_callers(relay_port, calls, a.seconds, a.ws))
            r1, e1, c1 = cpu_s(relay.pid), cpu_s(agent.pid), time.process_time()  # type: ignore[arg-type]
            call_s = calls * a.seconds
            print(
                f"{calls:4d} calls × {a.seconds:.0f} s: relay {1000 * (r1 - r0) / call_s:.2f} ms CPU "
                f"per call-second (agent {1000 * (e1 - e0) / call_s:.2f}, callers "
                f"{1000 * (c1 - c0) / call_s:.2f}); load average {os.getloadavg()[0]:.2f}"
            )
    finally:
        relay.kill()
        agent.kill()


if __name__ == "__main__":
    main()
