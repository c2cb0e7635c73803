"""Shared facts for the deployment tests: where things are, what the app promises."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from bridge.config import Config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

# Endpoints and port the app serves (bridge serve): liveness, readiness, metrics.
LIVENESS, READINESS, METRICS = "/healthz", "/readyz", "/metrics"
CONTAINER_PORT = 8080
SECRET_ENV = (
    "ELEVENLABS_API_KEY",
    "TWILIO_AUTH_TOKEN",
    "BRIDGE_ADMIN_TOKEN",
    "BRIDGE_STREAM_SECRET",
)
# Stands in for every secret: as long as start-up demands of the admin token and stream secret.
DUMMY_SECRET = "dummy-secret-" + "0" * 32
DEFAULT_DRAIN_TIMEOUT_S = 3600.0


def drain_timeout_s() -> float:
    """The configured default drain timeout, once a config key for it exists."""
    for section in dataclasses.fields(Config):
        if section.name == "routes":
            continue
        default = section.default_factory()  # type: ignore[misc]
        for f in dataclasses.fields(default):
            if "drain" in f.name and f.name.endswith("_s"):
                return float(getattr(default, f.name))
    return DEFAULT_DRAIN_TIMEOUT_S


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def parse_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        out[key.strip()] = value.strip()
    return out
