"""Without Chromium the browser tests skip with one line, or fail where CI requires them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console import conftest


def test_missing_chromium_skips_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.delenv("BRIDGE_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception) as e:
        conftest.require_chromium()
    assert "\n" not in str(e.value.msg) and "apt-get install chromium" in str(e.value.msg)


def test_missing_chromium_fails_where_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setenv("BRIDGE_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception) as e:
        conftest.require_chromium()
    assert str(e.value.msg).startswith("BRIDGE_REQUIRE_BROWSER=1 but no Chromium")
