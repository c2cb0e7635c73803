"""`bridge serve`: run the bridge (Twilio webhooks + media streams) until Ctrl-C / SIGTERM.

With no upstream configured (``platform.base_url`` unset) the built-in Agents Platform
emulator runs in the same process on its own loopback port, with a random API key the
bridge is given (so signed URLs work, private agents included), and the default agent
is one of its seeded agents unless ``BRIDGE_DEFAULT_AGENT_ID`` names another.  Both are
logged on one line, so nobody mistakes the emulator for the real platform.  When no
Twilio account is configured either and the bridge is loopback-only, the Twilio REST
emulator runs in-process too (:mod:`bridge.emulator.twilio.inprocess`: its numbers are
logged at start, the bridge's REST client and signature checks use its account), so
``numbers import`` and ``bridge call`` work offline.

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
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette

from bridge.app import create_app
from bridge.asgi import reuse_port_socket, running_server
from bridge.config import Config, load_config, with_overrides
from bridge.edge.limits import EdgeLimits
from bridge.errors import ConfigError, InputError, StoreError
from bridge.log import configure_logging, log_event
from bridge.metrics import Metrics, Multiprocess
from bridge.ops.group import GroupView
from bridge.ops.service import Operations
from bridge.ops.supervisor import Supervisor, group_directory
from bridge.store import Store

HELP = "run the bridge (uses the built-in Agents Platform emulator when no upstream is set)"

EMULATOR_DEFAULT_AGENT = "agent_emulator_echo"

logger = logging.getLogger("bridge.serve")

T = TypeVar("T")


def _workers(value: str) -> str:
    if value == "auto" or (value.isdigit() and 1 <= int(value) <= 256):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not 1-256 or auto")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Everything else is configuration: --config, TOML or environment.
    a = parser.add_argument
    a("--host", help="listen address (overrides server.host / BRIDGE_HOST)")
    a("--port", type=int, help="listen port (overrides server.port / BRIDGE_PORT)")
    a(
        "--workers",
        type=_workers,
        metavar="N|auto",
        help="worker processes sharing the port; auto = one per CPU "
        "(overrides server.workers / BRIDGE_WORKERS; default 1)",
    )
    # Set by the supervisor of --workers N on each worker it starts.
    a("--worker-index", type=int, help=argparse.SUPPRESS)
    a("--worker-group", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)  # the flags win over the file and the environment
    for flag, name in ((args.host, "BRIDGE_HOST"), (args.port, "BRIDGE_PORT")):
        if flag is not None:
            env[name] = str(flag)
    if args.workers is not None:
        env["BRIDGE_WORKERS"] = "0" if args.workers == "auto" else args.workers
    cfg = load_config(args.config, env)
    workers = cfg.server.workers or os.cpu_count() or 1
    if args.worker_index is not None:
        if not args.worker_group:
            raise InputError("--worker-group", "is required with --worker-index")
        group = GroupView(Path(args.worker_group), args.worker_index)
        configure_logging(cfg.log.level, context={"worker": args.worker_index})
        _run_loop(_serve(cfg, group))
        return 0
    configure_logging(cfg.log.level)
    if workers > 1:
        return _run_loop(_supervise(cfg, workers, args.config)) or 0
    _run_loop(_serve(cfg))
    return 0


def _run_loop(coro: Coroutine[Any, Any, T]) -> T | None:
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=_loop_factory()) as r:
        return r.run(coro)
    return None  # interrupted before the signal handlers were in place


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


async def _supervise(cfg: Config, workers: int, config_path: str | None) -> int:
    """``--workers N``: the emulators (if no upstream) here, the bridge in N workers."""
    host, port = cfg.server.host, cfg.server.port
    if port == 0:
        raise ConfigError(
            "server.port",
            f"is 0 (any free port) with {workers} workers: each would pick its own",
            "a fixed port",
        )
    async with emulated(cfg) as effective:
        base_env = {**os.environ, **_changed_env(cfg, effective)}
        instance = cfg.server.instance_id or socket.gethostname()
        cli = [sys.executable, "-m", "bridge.cli"]
        if config_path is not None:
            cli += ["--config", config_path]
        with group_directory() as group_dir:

            def command(index: int) -> tuple[list[str], dict[str, str]]:
                argv = [*cli, "serve", "--host", host, "--port", str(port), "--workers", "1"]
                argv += ["--worker-index", str(index), "--worker-group", str(group_dir)]
                # One instance id per process (records and heartbeats are per process).
                return argv, {"BRIDGE_INSTANCE_ID": f"{instance}-w{index}"[:100]}

            log_event(logger, "serve.supervising", workers=workers, url=f"http://{host}:{port}")
            return await Supervisor(workers, command, base_env, group_dir).run()


def _changed_env(cfg: Config, effective: Config) -> dict[str, str]:
    """What the emulators changed in the config, as the variables that say it to a worker."""
    env: dict[str, str] = {}
    for section in ("platform", "twilio"):
        old, new = getattr(cfg, section), getattr(effective, section)
        for f in dataclasses.fields(new):
            value = getattr(new, f.name)
            if value != getattr(old, f.name) and value is not None:
                name = f.metadata.get("env")
                if name is None:
                    raise RuntimeError(f"{section}.{f.name} has no variable to pass it to workers")
                env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


async def _serve(cfg: Config, group: GroupView | None = None) -> None:
    """The bridge in this process: alone, or worker ``group.index`` of a group."""
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
    metrics, sock, orphan = None, None, None
    if group is not None:
        metrics = Metrics(multiprocess=Multiprocess(str(group.metrics_dir), group.pids))
        sock = _shared_socket(cfg.server.host, cfg.server.port)
        orphan = asyncio.create_task(_watch_parent(lambda: on_signal(signal.SIGTERM)))
    try:
        async with prepare(cfg, metrics) as (effective, app):
            ops: Operations = app.state.ops
            ops.group = group
            if group is not None and ops.services.store is not None:
                ops.drain.streamed_elsewhere = _streamed(ops.services.store)
            running.append(ops)
            async with running_server(
                app,
                effective.server.host,
                effective.server.port,
                ws_max_size=effective.server.max_message_bytes,
                limits=EdgeLimits.from_server(effective.server),
                on_refusal=lambda reason: ops.metrics.edge_refused_total.labels(reason).inc(),
                sock=sock,
            ) as server:
                log_event(logger, "serve.listening", url=server.http_url, pid=os.getpid())
                # Everything built at start-up lives as long as the process: keep it out
                # of the cyclic collector's full passes (each one stalls every call).
                gc.freeze()
                await stop.wait()
                log_event(logger, "serve.signal", signal=signals[0])
                await ops.drain.run()
            # Leaving the block stopped uvicorn: sockets closed, the app's shutdown ran.
    finally:
        if orphan is not None:
            orphan.cancel()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


def _streamed(store: Store) -> Callable[[str], bool]:
    """Whether the call's record shows its stream started (in whichever worker)."""

    def streamed(call_sid: str) -> bool:
        try:
            rec = store.get_call(call_sid)
        except StoreError:
            return False  # unknown: keep waiting (the drain's wait is bounded)
        return rec is not None and rec.stream_sid is not None

    return streamed


def _shared_socket(host: str, port: int) -> socket.socket:
    try:
        return reuse_port_socket(host, port)
    except OSError as e:
        # Exit status 2: the supervisor stops the group instead of restarting in a loop.
        raise ConfigError(
            "server.port", f"cannot listen on {host}:{port} ({e.strerror})", "a free port"
        ) from None


PARENT_POLL_S = 1.0


async def _watch_parent(drain: Callable[[], None]) -> None:
    """A worker whose supervisor is gone (killed) drains and exits like on SIGTERM."""
    parent = os.getppid()
    while True:  # no event to wait for: a parent's death is only seen as a new ppid
        await asyncio.sleep(PARENT_POLL_S)
        if os.getppid() != parent:
            break
    log_event(logger, "serve.supervisor_gone", logging.WARNING, note="draining")
    drain()


@contextlib.asynccontextmanager
async def prepare(
    cfg: Config, metrics: Metrics | None = None
) -> AsyncIterator[tuple[Config, Starlette]]:
    """The config to serve with and the app; runs the platform emulator meanwhile if needed."""
    async with emulated(cfg) as effective:
        yield effective, create_app(effective, metrics=metrics)


@contextlib.asynccontextmanager
async def emulated(cfg: Config) -> AsyncIterator[Config]:
    """``cfg``, or with no upstream: ``cfg`` pointed at emulators running meanwhile."""
    if cfg.platform.base_url is not None:
        yield cfg
        return
    # Imported here: a deployment with a real upstream never loads the emulator.
    from bridge.emulator.platform import PlatformState, create_platform_app
    from bridge.emulator.twilio import create_twilio_app
    from bridge.emulator.twilio import inprocess as twilio_emulator

    state = PlatformState()
    api_key = secrets.token_urlsafe(24)
    refusal = twilio_emulator.refusal(cfg)
    try:
        async with contextlib.AsyncExitStack() as stack:
            emu = await stack.enter_async_context(
                running_server(create_platform_app(state, api_key=api_key))
            )
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
            if refusal is None:
                account = twilio_emulator.emulated_account()
                tw = await stack.enter_async_context(running_server(create_twilio_app(account)))
                twilio = twilio_emulator.twilio_config(cfg.twilio, tw.http_url)
                effective = with_overrides(effective, twilio=twilio)
                log_event(
                    logger,
                    "serve.using_twilio_emulator",
                    logging.WARNING,
                    note="no Twilio account configured: using the built-in Twilio REST "
                    "emulator (webhook signatures checked with its published token)",
                    twilio_api_url=tw.http_url,
                    account_sid=account.account_sid,
                    numbers=sorted(n.phone_number for n in account.numbers.values()),
                )
            elif cfg.twilio.account_sid is None:
                log_event(
                    logger,
                    "serve.no_twilio_emulator",
                    reason=refusal,
                    note="numbers import needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
                )
            yield effective
    finally:
        state.close()
