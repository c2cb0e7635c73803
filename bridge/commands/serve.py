"""`bridge serve`: run the bridge (Twilio webhooks + media streams) until Ctrl-C / SIGTERM.

With no upstream configured (``platform.base_url`` unset) the built-in Agents Platform
emulator runs in the same process on its own loopback port, with a random API key the
bridge is given (so signed URLs work, private agents included), and the default agent
is one of its seeded agents unless ``BRIDGE_DEFAULT_AGENT_ID`` names another.  Both are
logged on one line, so nobody mistakes the emulator for the real platform.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import secrets
import signal
from collections.abc import AsyncIterator, Generator

import uvicorn
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.asgi import running_server, uvicorn_config
from bridge.config import Config, load_config, with_overrides
from bridge.log import configure_logging, log_event

HELP = "run the bridge (uses the built-in Agents Platform emulator when no upstream is set)"

EMULATOR_DEFAULT_AGENT = "agent_emulator_echo"

logger = logging.getLogger("bridge.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass  # everything is configuration: --config, TOML or environment


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    configure_logging(cfg.log.level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(cfg))
    return 0


class _Server(uvicorn.Server):
    """uvicorn's shutdown on SIGINT/SIGTERM (a second Ctrl-C forces it), without
    re-raising the signal afterwards: a clean stop exits with status 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _serve(cfg: Config) -> None:
    async with prepare(cfg) as (effective, app):
        server = _Server(
            uvicorn_config(
                app,
                effective.server.host,
                effective.server.port,
                ws_max_size=effective.server.max_message_bytes,
            )
        )
        # On a signal uvicorn stops accepting, closes connections and runs the app's
        # shutdown (where a graceful drain of live calls belongs).
        await server.serve()


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
