"""`bridge numbers`: list, import, show, assign, unassign, update, delete (via the admin API)."""

from __future__ import annotations

import argparse
from typing import Any

from bridge.cli_client import (
    AdminClient,
    add_client_arguments,
    cell,
    fields,
    run_command,
    table,
    when,
)
from bridge.errors import InputError

HELP = "provisioned phone numbers of a running bridge (admin API)"

_CLEARABLE = ("first_message", "language", "dynamic_variables", "fallback_number")
# The admin API's field names in its errors, as the flags of `numbers import|update`.
_FLAGS = {
    "set configure_twilio to false": "pass --no-twilio",
    "configure_twilio": "--no-twilio",
    "twilio_number_sid": "--twilio-sid",
    "agent_id": "--agent",
    "first_message": "--first-message",
    "dynamic_variables": "--var",
    "fallback_number": "--fallback",
    "record": "--record",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="list provisioned numbers")
    add_client_arguments(p)

    p = sub.add_parser("show", help="one number")
    p.add_argument("id", help="E.164 number or phone_number_id")
    add_client_arguments(p)

    p = sub.add_parser(
        "import", help="import a Twilio number into the platform and point it at this bridge"
    )
    p.add_argument("number", help="E.164 number, e.g. +14155550100")
    p.add_argument("--label", help="label on the platform (default: the number)")
    p.add_argument("--agent", dest="agent_id", help="agent to assign")
    p.add_argument(
        "--no-twilio",
        dest="configure_twilio",
        action="store_false",
        help="do not change the Twilio number's voice URL / status callback",
    )
    p.add_argument("--twilio-sid", dest="twilio_number_sid", help="the Twilio number SID (PN...)")
    _add_overrides(p)
    add_client_arguments(p)

    p = sub.add_parser("assign", help="assign an agent to a number")
    p.add_argument("id", help="E.164 number or phone_number_id")
    p.add_argument("agent_id", help="agent id")
    add_client_arguments(p)

    p = sub.add_parser("unassign", help="remove the number's agent")
    p.add_argument("id", help="E.164 number or phone_number_id")
    add_client_arguments(p)

    p = sub.add_parser("update", help="set or clear bridge-side overrides")
    p.add_argument("id", help="E.164 number or phone_number_id")
    _add_overrides(p)
    p.add_argument(
        "--clear",
        action="append",
        choices=_CLEARABLE,
        default=[],
        help="clear an override (repeatable)",
    )
    add_client_arguments(p)

    p = sub.add_parser("delete", help="delete a number from the platform and this bridge")
    p.add_argument("id", help="E.164 number or phone_number_id")
    p.add_argument(
        "--restore-voice-url",
        metavar="URL",
        help="point the Twilio number's voice URL here (e.g. the one shown at import)",
    )
    add_client_arguments(p)


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--first-message", help="first message the agent says on this number")
    p.add_argument("--language", help="conversation language, e.g. en")
    p.add_argument(
        "--var",
        dest="variables",
        action="append",
        metavar="NAME=VALUE",
        help="dynamic variable for the agent (repeatable; replaces the set)",
    )
    p.add_argument("--fallback", dest="fallback_number", help="E.164 number if the agent fails")
    p.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="record what callers to this number hear (docs/recording.md); --no-record: stop",
    )


def _variables(pairs: list[str] | None) -> dict[str, str] | None:
    if pairs is None:
        return None
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError("--var", f"expected NAME=VALUE, got {pair!r}", status=400)
        out[name] = value
    return out


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("first_message", "language", "fallback_number"):
        if getattr(args, name) is not None:
            out[name] = getattr(args, name)
    variables = _variables(args.variables)
    if variables is not None:
        out["dynamic_variables"] = variables
    if args.record is not None:
        out["record"] = args.record
    return out


def _show_list(data: Any) -> None:
    table(
        "Numbers",
        ("number", "phone_number_id", "label", "agent", "overrides"),
        (
            (
                n["number"],
                n["phone_number_id"],
                n["label"],
                _agent(n),
                ", ".join(k for k in (*_CLEARABLE, "record") if n.get(k)) or "-",
            )
            for n in data["items"]
        ),
        ids=("number", "phone_number_id"),
    )


def _agent(n: dict[str, Any]) -> str:
    if not n.get("agent_id"):
        return "-"
    return f"{n['agent_id']} ({n['agent_name']})" if n.get("agent_name") else n["agent_id"]


def _show_number(n: Any) -> None:
    shown = dict(n)
    shown["updated_at"] = when(n.get("updated_at"))
    fields(f"Number {n['number']}", shown)


def _show_import(data: Any) -> None:
    _show_number(data["number"])
    tw = data.get("twilio")
    if tw:
        fields(
            "Twilio number",
            {
                "sid": tw["number_sid"],
                "voice_url": tw["voice_url"],
                "status_callback": tw["status_callback"],
                "previous voice_url": tw["previous_voice_url"],
                "previous status_callback": tw["previous_status_callback"],
            },
        )
    else:
        print("Twilio number not changed (--no-twilio).")


def _show_delete(data: Any) -> None:
    where = (
        "platform and bridge"
        if data["platform_deleted"]
        else "bridge (already gone on the platform)"
    )
    print(f"Deleted {data['number']} ({cell(data['phone_number_id'])}) from the {where}.")
    tw = data.get("twilio")
    if tw:
        print(f"Twilio number {tw['number_sid']} now points at {cell(tw['voice_url'])}.")


def run(args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return run_command(args, AdminClient.list_numbers, _show_list)
    if action == "show":
        return run_command(args, lambda c: c.get_number(args.id), _show_number)
    if action == "import":
        body: dict[str, Any] = {"number": args.number, "configure_twilio": args.configure_twilio}
        for name in ("label", "agent_id", "twilio_number_sid"):
            if getattr(args, name) is not None:
                body[name] = getattr(args, name)
        return run_command(
            args, lambda c: c.import_number({**body, **_overrides(args)}), _show_import, _FLAGS
        )
    if action == "assign":
        return run_command(
            args, lambda c: c.update_number(args.id, {"agent_id": args.agent_id}), _show_number
        )
    if action == "unassign":
        return run_command(
            args, lambda c: c.update_number(args.id, {"agent_id": None}), _show_number
        )
    if action == "update":
        changes = {name: None for name in args.clear}
        return run_command(
            args,
            lambda c: c.update_number(args.id, {**changes, **_overrides(args)}),
            _show_number,
            _FLAGS,
        )
    if action == "delete":
        return run_command(
            args, lambda c: c.delete_number(args.id, args.restore_voice_url), _show_delete
        )
    raise AssertionError(action)
