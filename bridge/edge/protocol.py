"""The protocol uvicorn runs for every connection: a guard around uvicorn's own.

uvicorn takes the HTTP protocol class as ``Config(http=...)`` and builds one per
connection with ``(config=, server_state=, app_state=, _loop=)``.  :func:`edge_protocol`
gives such a class.  Each instance builds the protocol uvicorn would have used
(httptools when installed, else h11: ``uvicorn.protocols.http.auto``), passes it every
transport event, and before handing it bytes feeds them to a
:class:`~bridge.edge.scanner.RequestScanner`.  It answers by itself, then closes:

* 503 when ``max_connections`` connections are open (uvicorn's
  ``server_state.connections``: HTTP connections and WebSockets alike, this one not
  yet); the connections open go on untouched;
* 431 / 413 / 400 when the scanner refuses, before the parser sees the bytes;
* 408 when a connection's first request head is not complete ``request_head_timeout_s``
  after it opened (later requests: after their first byte; those just get closed);
* a request body not complete ``request_head_timeout_s`` after its head: closed;
* an upgrade not answered ``upgrade_timeout_s`` after its request began: closed (a
  WebSocket is answered once uvicorn's protocol has ``handshake_complete``; any other
  upgrade, h2c say, never is, so such a connection lasts at most that long).

Answers are written, the sending side shut, and what the client still sends read and
dropped for ``linger_s`` before the close: closing on unread bytes would reset the
connection and the client might never see the answer.  uvicorn's own ``limit_concurrency``
was not enough: it answers 503 only once a whole head is parsed (so a slow head holds
its slot), counts running tasks too, and never refuses a WebSocket upgrade
(``httptools_impl.on_headers_complete`` returns before its check when upgrading).

Idle keep-alive is uvicorn's own ``timeout_keep_alive`` (armed after each response).
When uvicorn upgrades a connection to a WebSocket it calls ``transport.set_protocol``
with its WebSocket protocol: from then on this guard sees nothing, so a live media
stream pays nothing for it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, ClassVar, cast

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.server import ServerState

from bridge.edge import refusals
from bridge.edge.limits import EdgeLimits
from bridge.edge.scanner import Phase, RequestScanner, ScanLimits
from bridge.edge.turns import spread
from bridge.log import log_event

logger = logging.getLogger("bridge.edge")

InnerFactory = Callable[..., asyncio.Protocol]
# Told the reason of every refusal or deadline close (the app's metrics counter).
Observe = Callable[[str], None]


class _Observer:
    """Holds an ``Observe`` as a class attribute (a bare function would become a method)."""

    def __init__(self, observe: Observe | None = None) -> None:
        self._observe = observe

    def __call__(self, reason: str) -> None:
        if self._observe is not None:
            self._observe(reason)


class LogThrottle:
    """At most one line per event per second: a flood must not become a log flood."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, now: float, event: str, **fields: Any) -> None:
        if now - self._last.get(event, -1e9) < 1.0:
            self._suppressed[event] = self._suppressed.get(event, 0) + 1
            return
        self._last[event] = now
        suppressed = self._suppressed.pop(event, 0)
        log_event(logger, event, logging.WARNING, suppressed=suppressed or None, **fields)


class EdgeProtocol(asyncio.Protocol):
    limits: ClassVar[EdgeLimits] = EdgeLimits()
    inner_factory: ClassVar[InnerFactory] = AutoHTTPProtocol
    throttle: ClassVar[LogThrottle] = LogThrottle()
    observe: ClassVar[_Observer] = _Observer()

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._loop = _loop or asyncio.get_event_loop()
        lim = self.limits
        self._scanner = RequestScanner(
            ScanLimits(lim.max_header_bytes, lim.max_headers, lim.max_body_bytes)
        )
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._refused = False  # answered by the edge: what comes now is discarded
        self._request_start = 0.0
        self._timer: asyncio.TimerHandle | None = None  # head or body deadline
        self._timer_for: tuple[Phase, int] | None = None
        self._upgrade_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not derive from asyncio's.
        self._transport = cast(asyncio.Transport, transport)
        self._request_start = self._loop.time()
        cap = self.limits.max_connections
        if cap and len(self._server_state.connections) >= cap:
            # Answered at once, request unread: the cheapest thing we can do for it.
            self.observe("busy")
            self._refuse(refusals.BUSY, "edge.busy", status=503, open=cap)
            return
        self._inner = type(self).inner_factory(
            config=self._config,
            server_state=self._server_state,
            app_state=self._app_state,
            _loop=self._loop,
        )
        self._inner.connection_made(transport)
        self._arm(Phase.HEAD, 1, self.limits.request_head_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._inner is None:
            return
        scanner = self._scanner
        started = scanner.requests_started
        refusal = scanner.feed(data)
        if refusal is not None:
            self.observe(refusal.name.lower())
            self._refuse(
                refusals.FOR_REFUSAL[refusal],
                "edge.refused",
                status=refusal.status,
                reason=refusal.reason,
                method=scanner.method.decode("latin-1"),
                target=scanner.target.decode("latin-1"),
            )
            return
        if scanner.requests_started != started and started > 0:
            self._request_start = self._loop.time()  # a later request's first byte
        self._follow(scanner)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is None or self._refused:
            return None  # the transport closes itself
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._upgrade_timer is not None:
            self._upgrade_timer.cancel()
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    # ------------------------------------------------------------------ deadlines

    def _follow(self, scanner: RequestScanner) -> None:
        """Arm the deadline that fits where the current request is."""
        phase, n = scanner.phase, scanner.requests_started
        lim = self.limits
        if scanner.upgrade_seen and self._upgrade_timer is None:
            left = self._request_start + lim.upgrade_timeout_s - self._loop.time()
            self._upgrade_timer = self._loop.call_later(
                max(left, 0.0), _spread_out, self._upgrade_expired
            )
        if phase is Phase.HEAD:
            if self._timer_for != (Phase.HEAD, n):
                left = self._request_start + lim.request_head_timeout_s - self._loop.time()
                self._arm(Phase.HEAD, n, max(left, 0.0))
        elif phase is Phase.BODY:
            if self._timer_for != (Phase.BODY, n):
                self._arm(Phase.BODY, n, lim.request_head_timeout_s)
        else:  # between requests (uvicorn's keep-alive takes over) or upgraded
            self._cancel()

    def _arm(self, phase: Phase, n: int, delay: float) -> None:
        self._cancel()
        self._timer_for = (phase, n)
        self._timer = self._loop.call_later(delay, self._on_deadline, phase)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_for = None

    def _on_deadline(self, phase: Phase) -> None:
        self._timer = self._timer_for = None
        spread().run(functools.partial(self._expired, phase))

    def _expired(self, phase: Phase) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        target = self._scanner.target.decode("latin-1") or None
        self.observe("head_timeout" if phase is Phase.HEAD else "body_timeout")
        if phase is Phase.HEAD and self._scanner.requests_done == 0:
            # Nothing else was ever sent on this connection, so a 408 cannot interleave.
            self._refuse(refusals.HEAD_TIMEOUT, "edge.head_timeout", status=408, target=target)
            return
        event = "edge.head_timeout" if phase is Phase.HEAD else "edge.body_timeout"
        self.throttle.log(self._loop.time(), event, client=_peer(transport), target=target)
        transport.close()

    def _upgrade_expired(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        # uvicorn's WebSocket protocols set handshake_complete once they answered.
        if getattr(transport.get_protocol(), "handshake_complete", False):
            return
        self.observe("upgrade_timeout")
        self.throttle.log(
            self._loop.time(),
            "edge.upgrade_timeout",
            client=_peer(transport),
            target=self._scanner.target.decode("latin-1") or None,
        )
        transport.close()

    # ------------------------------------------------------------------ refusing

    def _refuse(self, answer: bytes, event: str, **fields: Any) -> None:
        transport = self._transport
        assert transport is not None
        self._refused = True
        self._cancel()
        self.throttle.log(self._loop.time(), event, client=_peer(transport), **fields)
        transport.write(answer)
        # Half-close and keep reading (discarding) for a moment, so the client reads our
        # answer instead of a reset from closing on bytes it already sent.
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(self.limits.linger_s, _spread_out, transport.close)


def _spread_out(callback: Callable[[], None]) -> None:
    # Connections opened together reach their deadlines together: a few per loop
    # iteration, not hundreds in one (bridge.edge.turns.Spread).
    spread().run(callback)


def _peer(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def edge_protocol(
    limits: EdgeLimits, inner: InnerFactory | None = None, observe: Observe | None = None
) -> type[EdgeProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` enforcing ``limits``;
    ``observe`` hears the reason of each refusal (``bridge_edge_refused_total``)."""
    bound_limits, bound_inner = limits, inner or AutoHTTPProtocol
    bound_observe = _Observer(observe)

    class BoundEdgeProtocol(EdgeProtocol):
        limits = bound_limits
        inner_factory = bound_inner
        throttle = LogThrottle()
        observe = bound_observe

    return BoundEdgeProtocol
