"""`bridge serve`: placeholder until its issue lands."""

from __future__ import annotations

import argparse
import sys

HELP = "serve (not implemented yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("bridge serve: not implemented yet", file=sys.stderr)
    return 2
