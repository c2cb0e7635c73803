"""Fixtures: ``bridge`` (tests/admin/stack.py) over the emulator fixture plugins."""

from __future__ import annotations

from tests.admin.stack import bridge

__all__ = ["bridge"]
