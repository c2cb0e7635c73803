"""`bridge instances`: the bridge instances sharing one store, with their state (via the
admin API of any of them)."""

from __future__ import annotations

import argparse
from typing import Any

from bridge.cli_client import AdminClient, add_client_arguments, run_command, table, when

HELP = "bridge instances sharing the store: state, heartbeat, live calls (admin API)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)


def _show(data: Any) -> None:
    table(
        "Instances",
        ("id", "state", "alive", "live_calls", "last_seen", "started", "version", "url"),
        (
            (
                i["id"],
                i["state"],
                "yes" if i["alive"] else "no",
                i["live_calls"],
                when(i["last_seen"]),
                when(i["started_at"]),
                i["version"],
                i["url"],
            )
            for i in data["items"]
        ),
        ids=("id",),
    )


def run(args: argparse.Namespace) -> int:
    return run_command(args, AdminClient.list_instances, _show)
