"""`bridge loadtest`: ramp synthetic phone calls onto a bridge and measure it.

Without ``--target`` it starts the Agents Platform emulator and the bridge as child
processes (so the bridge's CPU and memory are its own), creates the agents it needs,
and tears everything down afterwards.  With ``--target`` it calls a bridge that is
already running: loopback addresses only, unless ``--allow-remote-target`` says the
host is yours; the bridge's Twilio auth token comes from the config (``--config`` /
``TWILIO_AUTH_TOKEN``) and ``--to`` names the number routed to each format's agent.

Exit status: 0 when every phase met its criteria, 1 when one did not (the report is
written either way), 2 for bad options or a stack that would not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from rich.console import Console

from bridge.config import E164, load_config
from bridge.errors import InputError
from bridge.loadtest.model import Criteria
from bridge.loadtest.params import (
    AGENT_FORMATS,
    SCENARIOS,
    Params,
    check_target,
    parse_counts,
    parse_duration,
    parse_formats,
)
from bridge.loadtest.runner import run_loadtest

HELP = "ramp synthetic calls onto a bridge; report latency, integrity, CPU and memory"

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    a = parser.add_argument
    a(
        "--target",
        metavar="URL[,URL…]",
        action="append",
        help="bridge base URL (default: start bridge + emulator here); several (comma-"
        "separated or repeated): instances sharing one store, calls spread round-robin",
    )
    a("--allow-remote-target", action="store_true", help="allow a --target that is not loopback")
    a(
        "--workers",
        type=int,
        default=1,
        help="without --target: start the bridge with `bridge serve --workers N`",
    )
    a(
        "--record",
        action="store_true",
        help="without --target: the bridge records every call (to measure recording's cost)",
    )
    a(
        "--to",
        metavar="E164[,E164…]",
        default="",
        help="with --target: number routed to each format's agent, in --agent-format order",
    )
    a("--calls", default="10", help="calls per phase; a list (50,100,150) steps up phase by phase")
    a("--ramp", default="5s", help="time over which a phase's calls start, evenly spaced")
    a("--duration", default="10s", help="how long each call lasts")
    a(
        "--agent-format",
        default="pcm_16000",
        help=f"agent audio format(s), comma-separated: {', '.join(AGENT_FORMATS)}",
    )
    a(
        "--scenario",
        default="loopback",
        choices=SCENARIOS,
        help="what each call does (mixed: 3/5 loopback, 1/5 echo, 1/5 barge-in)",
    )
    a(
        "--report",
        default="loadtest-report",
        metavar="DIR",
        help="where report.json, report.png and child logs go",
    )
    a("--seed", type=int, default=1, help="probe noise seed (per call: derived from it)")
    a("--speed", type=float, default=1.0, help="caller pacing factor; latency figures need 1.0")
    a("--setup-timeout", default="10s", help="webhook and stream-open timeout per call")
    a("--max-p99-ms", type=float, default=20.0, help="criterion: relay latency p99")
    a("--max-cpu-ms", type=float, default=3.0, help="criterion: bridge CPU-ms per call-second")
    a(
        "--stop-on-failure",
        action="store_true",
        help="stop stepping up at the first phase that breaks a criterion",
    )


def params_from_args(args: argparse.Namespace) -> Params:
    urls = [u.strip() for arg in args.target or () for u in arg.split(",") if u.strip()]
    targets = [check_target(u, args.allow_remote_target) for u in urls]
    if len(set(targets)) != len(targets):
        raise InputError("--target", "the same URL is given twice")
    target = targets[0] if targets else None
    numbers = tuple(n.strip() for n in args.to.split(",") if n.strip())
    for n in numbers:
        if not E164.match(n):
            raise InputError("--to", f"{n!r} is not an E.164 number such as +14155550100")
    return Params(
        target=target,
        calls=parse_counts(args.calls),
        formats=parse_formats(args.agent_format),
        ramp_s=parse_duration(args.ramp, "--ramp"),
        duration_s=parse_duration(args.duration, "--duration"),
        scenario=args.scenario,
        report_dir=args.report,
        seed=args.seed,
        numbers=numbers,
        setup_timeout_s=parse_duration(args.setup_timeout, "--setup-timeout"),
        criteria=Criteria(max_p99_ms=args.max_p99_ms, max_cpu_ms_per_call_second=args.max_cpu_ms),
        stop_on_failure=args.stop_on_failure,
        speed=args.speed,
        more_targets=tuple(targets[1:]),
        workers=args.workers,
        record=args.record,
    )


def _run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """uvloop when installed (it is, with uvicorn[standard]): the caller's timestamps are
    the measurement, and a faster loop adds less of its own delay to them."""
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    auth_token = None
    if params.target is not None:
        auth_token = load_config(args.config).twilio.auth_token
    console = Console()
    report = _run_loop(run_loadtest(params, console, auth_token))
    return 0 if report.phases and all(ph.passed for ph in report.phases) else 1
