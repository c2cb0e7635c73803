"""`bridge call`: place one synthetic call, print what the caller hears, write it as a WAV.

Where the call goes, one rule: ``--local`` starts a private bridge (a ``bridge serve``
child process with the built-in emulators, stopped afterwards); otherwise the call goes
to ``--target`` (default: the configured listen address, http://127.0.0.1:8080), which
must answer, or the command stops with one line saying to start ``bridge serve`` or
pass ``--local``.  A target other than loopback needs ``--allow-remote-target``.

The caller acts as Twilio delivering a call to ``--to`` at the bridge: the webhook is
signed with the bridge's Twilio auth token (``TWILIO_AUTH_TOKEN`` / the config), or,
when none is configured, with the in-process Twilio emulator's published token (what a
``bridge serve`` without a Twilio account checks).  Without ``--to`` it dials a number
nothing is provisioned for, so the bridge's default agent answers.

Exit status: 0 when the call reached an agent and ended cleanly, 1 when it did not (one
line on stderr says why; the timeline and WAV are still written), 2 for bad options or
a bridge that does not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from bridge.config import E164, load_config
from bridge.dialer.local import local_bridge
from bridge.dialer.plan import CallPlan
from bridge.dialer.run import Dial, dial, probe
from bridge.dialer.timeline import clean, turns, utterances
from bridge.dialer.wav import call_wav
from bridge.emulator.twilio import inprocess
from bridge.emulator.twilio.records import CallResult
from bridge.errors import InputError
from bridge.loadtest.params import check_target

HELP = (
    "place one synthetic call at a bridge: live timeline, per-turn latency, WAV of what was heard"
)

DEFAULT_TO = "+15550100000"  # a fictional number nothing is provisioned for: the default route
DEFAULT_FROM = "+15550100002"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--target", metavar="URL", help="the bridge (default: the configured listen address)")
    a("--local", action="store_true", help="start a private bridge for this call and stop it after")
    a("--allow-remote-target", action="store_true", help="allow a --target that is not loopback")
    a(
        "--to",
        metavar="E164",
        default=DEFAULT_TO,
        help="number dialled (default: one with no route: the default agent)",
    )
    a(
        "--from",
        dest="from_",
        metavar="E164",
        default=DEFAULT_FROM,
        help="caller ID (default %(default)s)",
    )
    a(
        "--turns",
        type=int,
        metavar="N",
        default=2,
        help="times the caller talks and waits for a reply (default 2)",
    )
    a("--talk", type=float, default=1.5, metavar="S", help="seconds per caller turn (default 1.5)")
    a("--tone", type=float, metavar="HZ", help="talk a tone at HZ instead of speech-like noise")
    a("--barge-in", action="store_true", help="talk over the agent's greeting in the first turn")
    a("--dtmf", default="", metavar="DIGITS", help="press these keys after the greeting")
    a("--hangup-after", type=float, metavar="S", help="hang up this many seconds into the call")
    a("--wav", metavar="PATH", help="where the recording goes (default ./call-<CallSid>.wav)")
    a("--stereo", action="store_true", help="WAV with the caller on the left, what it heard right")
    a("--speed", type=float, default=1.0, help=argparse.SUPPRESS)  # tests: call time runs faster


def run(args: argparse.Namespace) -> int:
    if not E164.match(args.to):
        raise InputError("--to", f"{args.to!r} is not an E.164 number such as +14155550100")
    if not E164.match(args.from_):
        raise InputError("--from", f"{args.from_!r} is not an E.164 number such as +14155550100")
    plan = CallPlan(
        turns=args.turns,
        talk_s=args.talk,
        tone_hz=args.tone,
        barge_in=args.barge_in,
        dtmf=args.dtmf,
        hangup_after_s=args.hangup_after,
    )
    return asyncio.run(_call(args, plan))


async def _call(args: argparse.Namespace, plan: CallPlan) -> int:
    if args.local:
        if args.target:
            raise InputError("--local", "give either --local or --target, not both")
        print("Starting a private bridge (built-in emulators) ...", flush=True)
        async with local_bridge() as url:
            d = Dial(url, url, args.to, args.from_, inprocess.AUTH_TOKEN, inprocess.ACCOUNT_SID)
            return await _place(args, plan, d)
    cfg = load_config(args.config)
    if args.target:
        target = check_target(args.target, args.allow_remote_target)
    else:
        host = cfg.server.host
        target = (
            f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{cfg.server.port}"
        )
    await probe(target, "start `uv run bridge serve`, or pass --local to start a private bridge")
    d = Dial(
        bridge_url=target,
        public_url=cfg.server.public_url or target,
        to=args.to,
        from_=args.from_,
        auth_token=cfg.twilio.auth_token or inprocess.AUTH_TOKEN,
        account_sid=cfg.twilio.account_sid or inprocess.ACCOUNT_SID,
    )
    return await _place(args, plan, d)


async def _place(args: argparse.Namespace, plan: CallPlan, d: Dial) -> int:
    d = dataclasses.replace(d, speed=args.speed)
    result, frames = await dial(d, plan, lambda text: print(text, flush=True))
    return _report(args, result, frames)


def _report(args: argparse.Namespace, result: CallResult, frames: list[bytes]) -> int:
    _summary(result)
    path = Path(args.wav or f"call-{result.call_sid}.wav")
    until = result.ended_at or 0.0
    path.write_bytes(call_wav(result, frames if args.stereo else None, until))
    layout = "stereo: caller left, heard right" if args.stereo else "mono: what the caller heard"
    print(f"Recording: {path} ({until:.1f} s, 8 kHz 16-bit, {layout})")
    problem = clean(result)
    if problem is not None:
        print(f"bridge call: {problem}", file=sys.stderr)
        return 1
    return 0


def _summary(result: CallResult) -> None:
    heard = utterances(result)
    seconds = sum(u.end - u.start for u in heard)
    print(f"Heard {seconds:.1f} s of agent audio in {len(heard)} utterance(s).")
    for t in turns(result):
        if t.latency_s is not None:
            print(
                f"  turn {t.number}: reply heard {t.latency_s * 1000:.0f} ms after the caller stopped"
            )
        elif t.talk_end is None:
            print(f"  turn {t.number}: the call ended while the caller was talking")
        else:
            print(f"  turn {t.number}: no reply heard")
