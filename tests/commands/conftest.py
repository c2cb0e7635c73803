"""Fixtures: ``bridge`` (a live bridge over both emulators) and ``cli`` (run ``bridge …``).

``await cli("numbers", "list")`` runs :func:`bridge.cli.main` in a worker thread (it makes
blocking HTTP requests to the bridge served by this test's event loop) against that
bridge, with the admin token in the environment, and returns ``(exit code, stdout,
stderr)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bridge.cli import main
from tests.admin.stack import BridgeUnderTest, bridge

__all__ = ["bridge", "cli"]

Cli = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def cli(
    bridge: BridgeUnderTest, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    monkeypatch.setenv("BRIDGE_ADMIN_TOKEN", bridge.token)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)

    async def run(*argv: str, url: str | None = None) -> tuple[int, str, str]:
        capsys.readouterr()  # drop what came before
        args = [*argv, "--url", url or bridge.url]
        rc = await asyncio.to_thread(main, args)
        out, err = capsys.readouterr()
        return rc, out, err

    return run
