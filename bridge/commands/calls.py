"""`bridge calls`: list and show call records, hang up a live call, place an outbound call
(via the admin API)."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from bridge.call.transcript import render_text
from bridge.cli_client import add_client_arguments, cell, fields, run_command, table, when
from bridge.errors import InputError
from bridge.store.transcripts import LatencySummary, TranscriptEntry

HELP = "calls of a running bridge: records and live calls (admin API)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="call records, newest first")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--live", dest="live", action="store_const", const=True, help="in progress")
    state.add_argument("--ended", dest="live", action="store_const", const=False, help="finished")
    p.add_argument("--number", help="calls to or from this E.164 number")
    p.add_argument("--agent", dest="agent_id", help="calls answered by this agent")
    p.add_argument("--limit", type=int, default=50, help="page size (1-1000, default 50)")
    p.add_argument("--cursor", help="next_cursor of the previous page")
    add_client_arguments(p)

    p = sub.add_parser("show", help="one call record")
    p.add_argument("sid", help="call SID")
    add_client_arguments(p)

    p = sub.add_parser("hangup", help="end a live call")
    p.add_argument("sid", help="call SID")
    add_client_arguments(p)

    p = sub.add_parser("transfer", help="hand a live call to a number (telephony.transfer_allow)")
    p.add_argument("sid", help="call SID")
    p.add_argument("to", help="E.164 number or SIP URI")
    add_client_arguments(p)

    # Outbound calls are the telephony features' (bridge/telephony/dialer.py).
    p = sub.add_parser("dial", help="place an outbound call bridged to an agent")
    p.add_argument("to", help="E.164 number to call")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="from_", metavar="NUMBER", help="one of our numbers")
    src.add_argument("--phone-number-id", help="one of our numbers, by platform id")
    p.add_argument("--agent", dest="agent_id", help="agent (default: the number's agent)")
    p.add_argument("--first-message", help="the agent's opening line for this call")
    p.add_argument(
        "--var",
        dest="variables",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="dynamic variable for the agent (repeatable)",
    )
    p.add_argument(
        "--machine-detection",
        choices=("Enable", "DetectMessageEnd"),
        help="answering-machine detection (acted on per telephony.voicemail_action)",
    )
    p.add_argument("--ring-timeout", type=int, help="seconds to let it ring (5-600)")
    add_client_arguments(p)


def _show_list(data: Any) -> None:
    table(
        "Calls",
        (
            "call_sid",
            "status",
            "from",
            "to",
            "agent",
            "started",
            "duration_s",
            "end_reason",
            "instance",
        ),
        (
            (
                c["call_sid"],
                c["status"],
                c["from_number"],
                c["to_number"],
                c["agent_id"],
                when(c["started_at"]),
                cell(c["duration_s"]),
                c["end_reason"],
                c.get("instance"),
            )
            for c in data["items"]
        ),
        ids=("call_sid",),
    )
    if data.get("next_cursor"):
        print(f"more: --cursor {data['next_cursor']}")


def _show_call(c: Any) -> None:
    shown = dict(c)
    entries = shown.pop("transcript", None) or []
    latency = shown.pop("latency", None)
    for k in ("started_at", "answered_at", "ended_at"):
        shown[k] = when(c.get(k))
    fields(f"Call {c['call_sid']}", shown)
    print()
    print(
        render_text(
            c["call_sid"],
            msgspec.convert(entries, tuple[TranscriptEntry, ...]),
            msgspec.convert(latency, LatencySummary | None),
        ),
        end="",
    )


def _show_hangup(data: Any) -> None:
    print(f"Call {data['call_sid']}: {data['status'].replace('_', ' ')}.")


def _show_transfer(data: Any) -> None:
    print(f"Call {data['call_sid']}: transferring to {data['to']}.")


def _dial_body(args: argparse.Namespace) -> dict[str, Any]:
    variables: dict[str, str] = {}
    for item in args.variables:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError("--var", f"expected NAME=VALUE, got {item!r}")
        variables[name] = value
    body = {
        "to": args.to,
        "from": args.from_,
        "phone_number_id": args.phone_number_id,
        "agent_id": args.agent_id,
        "first_message": args.first_message,
        "dynamic_variables": variables or None,
        "machine_detection": args.machine_detection,
        "ring_timeout": args.ring_timeout,
    }
    return {k: v for k, v in body.items() if v is not None}


def _show_dialed(data: Any) -> None:
    print(
        f"Call {data['call_sid']}: {data['status']}, {data['from']} -> {data['to']} "
        f"(agent {data['agent_id']})."
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        filters = {
            "live": args.live,
            "number": args.number,
            "agent_id": args.agent_id,
            "limit": args.limit,
            "cursor": args.cursor,
        }
        return run_command(args, lambda c: c.list_calls(**filters), _show_list)
    if args.action == "show":
        return run_command(args, lambda c: c.get_call(args.sid), _show_call)
    if args.action == "hangup":
        return run_command(args, lambda c: c.hangup(args.sid), _show_hangup)
    if args.action == "transfer":
        return run_command(args, lambda c: c.transfer(args.sid, args.to), _show_transfer)
    if args.action == "dial":
        body = _dial_body(args)
        return run_command(args, lambda c: c.place_call(body), _show_dialed)
    raise AssertionError(args.action)
