"""`bridge calls`: placeholder until its issue lands."""

from __future__ import annotations

import argparse
import sys

HELP = "calls (not implemented yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("bridge calls: not implemented yet", file=sys.stderr)
    return 2
