"""The ``bridge`` command: one table of subcommands, each in ``bridge/commands/``.

Every subcommand module provides ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``.  The global ``--config`` option is parsed here; subcommands load
the config themselves through :func:`bridge.config.load_config` so a bad key fails with
one line naming it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from bridge.errors import BridgeError

SUBCOMMANDS = (
    "serve",
    "call",
    "emulator",
    "loadtest",
    "numbers",
    "agents",
    "calls",
    "instances",
    "webhooks",
)


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"bridge.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge",
        description="Telephony bridge between Twilio Media Streams and Agents Platform voice agents.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="TOML config file (default: $BRIDGE_CONFIG, else built-in defaults + environment)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        mod = _module(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args._run(args)
    except BridgeError as e:
        print(f"bridge: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
