"""`bridge webhooks`: post-call webhook deliveries of a running bridge (admin API)."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from bridge.cli_client import add_client_arguments, fields, run_command, table, when

HELP = "post-call webhook deliveries of a running bridge: list, re-send (admin API)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="deliveries, newest first")
    p.add_argument("--state", choices=("pending", "delivered", "failed"), help="only these")
    p.add_argument("--call", dest="call_sid", metavar="SID", help="deliveries of this call")
    p.add_argument("--limit", type=int, default=50, help="page size (1-1000, default 50)")
    p.add_argument("--cursor", help="next_cursor of the previous page")
    add_client_arguments(p)

    p = sub.add_parser("retry", help="send a delivery again now (whatever its state)")
    p.add_argument("id", help="delivery id (whd_...)")
    add_client_arguments(p)


def _show_list(data: Any) -> None:
    table(
        "Webhook deliveries",
        ("id", "call_sid", "url", "state", "attempts", "last", "created", "next_attempt"),
        (
            (
                d["id"],
                d["call_sid"],
                d["url"],
                d["state"],
                d["attempts"],
                d["last_status"] if d["last_status"] is not None else d["last_error"],
                when(d["created_at"]),
                when(d["next_attempt_at"]) if d["state"] == "pending" else None,
            )
            for d in data["items"]
        ),
        ids=("id", "call_sid"),
    )
    if data.get("next_cursor"):
        print(f"more: --cursor {data['next_cursor']}")


def _show_retry(d: Any) -> None:
    shown = dict(d)
    for k in ("created_at", "next_attempt_at", "retry_until", "delivered_at"):
        shown[k] = when(d.get(k))
    fields(f"Delivery {d['id']}: due now, to be sent again", shown)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        params = {
            "state": args.state,
            "call_sid": args.call_sid,
            "limit": args.limit,
            "cursor": args.cursor,
        }
        return run_command(
            args, lambda c: c.request("GET", "/webhooks/deliveries", params=params), _show_list
        )
    if args.action == "retry":
        path = f"/webhooks/deliveries/{quote(args.id, safe='')}/retry"
        return run_command(args, lambda c: c.request("POST", path), _show_retry)
    raise AssertionError(args.action)
