from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from bridge.config import Config, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE, env={})
    assert cfg.server.port == 8080


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    for section in dataclasses.fields(Config):
        if section.name == "routes":
            assert "[[routes]]" in text
            continue
        assert f"[{section.name}]" in text, section.name
        for f in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            assert re.search(rf"^#? ?{f.name} = ", text, re.M), f"{section.name}.{f.name}"
