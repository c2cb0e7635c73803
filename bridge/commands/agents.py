"""`bridge agents`: placeholder until its issue lands."""

from __future__ import annotations

import argparse
import sys

HELP = "agents (not implemented yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("bridge agents: not implemented yet", file=sys.stderr)
    return 2
