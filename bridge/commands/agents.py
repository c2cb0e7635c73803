"""`bridge agents`: list agents, create a telephony-ready agent (via the admin API)."""

from __future__ import annotations

import argparse
from typing import Any

from bridge.cli_client import AdminClient, add_client_arguments, fields, run_command, table, when

HELP = "agents on the platform (admin API of a running bridge)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="list agents")
    add_client_arguments(p)

    p = sub.add_parser(
        "create", help="create a telephony-ready agent (ulaw_8000 both ways, end_call enabled)"
    )
    p.add_argument("--name", required=True, help="agent name")
    p.add_argument("--prompt", required=True, help="system prompt")
    p.add_argument("--first-message", help="what the agent says first")
    p.add_argument("--language", default="en", help="conversation language (default en)")
    p.add_argument("--voice-id", help="TTS voice id")
    add_client_arguments(p)


def _show_list(data: Any) -> None:
    table(
        "Agents",
        ("agent_id", "name", "created"),
        ((a["agent_id"], a["name"], when(a.get("created_at"))) for a in data["items"]),
        ids=("agent_id",),
    )


def _show_created(data: Any) -> None:
    fields("Agent created", data, ("agent_id", "name"))


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return run_command(args, AdminClient.list_agents, _show_list)
    if args.action == "create":
        body: dict[str, Any] = {"name": args.name, "prompt": args.prompt, "language": args.language}
        if args.first_message is not None:
            body["first_message"] = args.first_message
        if args.voice_id is not None:
            body["voice_id"] = args.voice_id
        return run_command(args, lambda c: c.create_agent(body), _show_created)
    raise AssertionError(args.action)
