"""`bridge serve`: run the bridge (Twilio webhooks + media streams) until Ctrl-C / SIGTERM.

With no upstream configured (``platform.base_url`` unset) the built-in Agents Platform
emulator runs in the same process on its own loopback port, with a random API key the
bridge is given (so signed URLs work, private agents included), and the default agent
is one of its seeded agents unless ``BRIDGE_DEFAULT_AGENT_ID`` names another.  Both are
logged on one line, so nobody mistakes the emulator for the real platform.

Signals are ours, not uvicorn's (uvicorn would stop accepting and close every socket,
cutting live calls): the server runs without signal capture and the first SIGTERM or
SIGINT starts the graceful drain (:mod:`bridge.ops.drain`: readiness 503, new calls
refused with the overflow answer, live calls run to their end or ``ops.drain_timeout_s``,
then the notice); only then is uvicorn stopped, and the process exits 0.  A second
signal cuts the wait short: the remaining calls get the notice at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import secrets
import signal
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette

from bridge.app import create_app
from bridge.asgi import running_server
from bridge.config import Config, load_config, with_overrides
from bridge.edge.limits import EdgeLimits
from bridge.log import configure_logging, log_event
from bridge.ops.service import Operations

HELP = "run the bridge (uses the built-in Agents Platform emulator when no upstream is set)"

EMULATOR_DEFAULT_AGENT = "agent_emulator_echo"

logger = logging.getLogger("bridge.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass  # everything is configuration: --config, TOML or environment


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    configure_logging(cfg.log.level)
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=_loop_factory()) as r:
        r.run(_serve(cfg))
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn[standard]): measured with
    ``bridge loadtest`` (docs/performance.md) it cuts the bridge's CPU per call and its
    relay-latency tail."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def _serve(cfg: Config) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals: list[str] = []
    running: list[Operations] = []  # the app's operations, once it exists

    def on_signal(sig: signal.Signals) -> None:
        signals.append(sig.name)
        stop.set()
        if len(signals) > 1 and running:
            running[0].drain.force()
            log_event(logger, "serve.signal_again", signal=sig.name, note="ending calls now")

    for sig in _SIGNALS:  # before anything starts: a signal during start-up stops cleanly
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        async with prepare(cfg) as (effective, app):
            ops: Operations = app.state.ops
            running.append(ops)
            async with running_server(
                app,
                effective.server.host,
                effective.server.port,
                ws_max_size=effective.server.max_message_bytes,
                limits=EdgeLimits.from_server(effective.server),
                on_refusal=lambda reason: ops.metrics.edge_refused_total.labels(reason).inc(),
            ) as server:
                log_event(logger, "serve.listening", url=server.http_url)
                # Everything built at start-up lives as long as the process: keep it out
                # of the cyclic collector's full passes (each one stalls every call).
                gc.freeze()
                await stop.wait()
                log_event(logger, "serve.signal", signal=signals[0])
                await ops.drain.run()
            # Leaving the block stopped uvicorn: sockets closed, the app's shutdown ran.
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


@contextlib.asynccontextmanager
async def prepare(cfg: Config) -> AsyncIterator[tuple[Config, Starlette]]:
    """The config to serve with and the app; runs the platform emulator meanwhile if needed."""
    if cfg.platform.base_url is not None:
        yield cfg, create_app(cfg)
        return
    # Imported here: a deployment with a real upstream never loads the emulator.
    from bridge.emulator.platform import PlatformState, create_platform_app

    state = PlatformState()
    api_key = secrets.token_urlsafe(24)
    try:
        async with running_server(create_platform_app(state, api_key=api_key)) as emu:
            platform = dataclasses.replace(
                cfg.platform,
                base_url=emu.http_url,
                api_key=api_key,
                default_agent_id=cfg.platform.default_agent_id or EMULATOR_DEFAULT_AGENT,
            )
            effective = with_overrides(cfg, platform=platform)
            log_event(
                logger,
                "serve.using_emulator",
                logging.WARNING,
                note="no upstream configured: using the built-in Agents Platform emulator",
                emulator_url=emu.http_url,
                default_agent=platform.default_agent_id,
                agents=sorted(state.agents),
            )
            yield effective, create_app(effective)
    finally:
        state.close()
