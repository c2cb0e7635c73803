"""`bridge emulator`: the offline Agents Platform and Twilio REST emulators in one server.

Both sets of routes live in one Starlette app on one port: the platform's under
``/v1/…`` (REST and the conversation WebSocket) and ``/emulator/…`` (inspection), the
Twilio REST emulator's under ``/2010-04-01/…`` and ``/emulator/twilio/…``.  Point the
bridge at it with ``ELEVENLABS_BASE_URL=http://HOST:PORT`` and
``TWILIO_API_BASE_URL=http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette

from bridge.asgi import running_server
from bridge.log import configure_logging

HELP = "run the offline Agents Platform + Twilio REST emulators (for development and load tests)"

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "emulator-auth-token"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=9000, help="listen port (default 9000; 0 = any)"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ELEVENLABS_API_KEY"),
        help="the xi-api-key the platform emulator accepts "
        "(default $ELEVENLABS_API_KEY; unset = any non-empty key)",
    )
    parser.add_argument(
        "--db", default=None, help="persist the platform emulator's state in this SQLite file"
    )
    parser.add_argument(
        "--account-sid",
        default=os.environ.get("TWILIO_ACCOUNT_SID") or DEFAULT_ACCOUNT_SID,
        help="Twilio account SID the REST emulator accepts (default $TWILIO_ACCOUNT_SID or AC000…)",
    )
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("TWILIO_AUTH_TOKEN") or DEFAULT_AUTH_TOKEN,
        help="Twilio auth token for Basic auth and signatures (default $TWILIO_AUTH_TOKEN)",
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="synthetic-call time factor (1.0 = real time)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def build_app(args: argparse.Namespace) -> Starlette:
    # Imported here so `bridge --help` stays light.
    from bridge.emulator.platform import PlatformState
    from bridge.emulator.platform.app import platform_routes
    from bridge.emulator.twilio import TwilioEmulatorState, twilio_routes

    platform = PlatformState(db_path=args.db)
    twilio = TwilioEmulatorState(
        account_sid=args.account_sid, auth_token=args.auth_token, speed=args.speed
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await twilio.aclose()

    app = Starlette(
        routes=[*platform_routes(platform, api_key=args.api_key), *twilio_routes(twilio)],
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.state.twilio = twilio
    return app


async def _serve(args: argparse.Namespace) -> None:
    app = build_app(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_server(app, args.host, args.port) as srv:
        agents = ", ".join(sorted(app.state.platform.agents))
        # Plain lines for a person at a terminal; the JSON logs follow.
        print(f"emulator listening on {srv.http_url}", file=sys.stderr, flush=True)
        gc.freeze()  # start-up objects stay out of the collector's full passes
        print(f"  ELEVENLABS_BASE_URL={srv.http_url}", file=sys.stderr)
        print(
            f"  TWILIO_API_BASE_URL={srv.http_url}  (account {args.account_sid})", file=sys.stderr
        )
        print(f"  agents: {agents}", file=sys.stderr, flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(args))
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed, as for ``bridge serve``: the emulator shares the load-test
    machine with the bridge, and its per-message cost is mostly event-loop work."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
