"""Which form of the transcript a client's Accept header asks for."""

from __future__ import annotations

import pytest

from bridge.admin.routes import prefers_text


@pytest.mark.parametrize(
    ("accept", "text"),
    [
        ("", False),  # no preference: JSON
        ("*/*", False),
        ("application/json", False),
        ("text/plain", True),
        ("text/plain, application/json;q=0.5", True),
        ("text/plain;q=0.5, application/json", False),
        ("text/*;q=0.9, application/json;q=0.8", True),
        ("text/html, */*;q=0.1", False),  # a browser: no text/plain beyond */*
        ("TEXT/PLAIN", True),
        ("text/plain;q=abc", False),
        ("text/plain;q=0", False),
    ],
)
def test_prefers_text(accept: str, text: bool) -> None:
    assert prefers_text(accept) is text
