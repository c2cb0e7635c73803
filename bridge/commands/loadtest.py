"""`bridge loadtest`: placeholder until its issue lands."""

from __future__ import annotations

import argparse
import sys

HELP = "loadtest (not implemented yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("bridge loadtest: not implemented yet", file=sys.stderr)
    return 2
