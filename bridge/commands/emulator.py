"""`bridge emulator`: placeholder until its issue lands."""

from __future__ import annotations

import argparse
import sys

HELP = "emulator (not implemented yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("bridge emulator: not implemented yet", file=sys.stderr)
    return 2
