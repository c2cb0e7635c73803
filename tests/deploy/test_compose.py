"""deploy/docker-compose.yml, its Prometheus config and env-file template."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bridge.config import load_config

from .conftest import (
    CONTAINER_PORT,
    DEPLOY,
    DUMMY_SECRET,
    METRICS,
    ROOT,
    SECRET_ENV,
    drain_timeout_s,
    load_yaml_docs,
    parse_env_file,
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml_docs(DEPLOY / "docker-compose.yml")[0]


def _unset(value: str) -> str:
    """A compose value with nothing set where compose runs: ``${VAR:-default}`` → default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _seconds(duration: str) -> float:
    """Compose durations: 1h30m, 3630s, 90s …"""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def test_bridge_service_builds_the_deploy_dockerfile(compose: dict[str, Any]) -> None:
    build = compose["services"]["bridge"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"


def test_sqlite_lives_on_a_named_volume(compose: dict[str, Any]) -> None:
    svc = compose["services"]["bridge"]
    db_dir = _unset(svc["environment"]["BRIDGE_DB"]).rsplit("/", 1)[0]
    mounts = dict(v.split(":", 1) for v in svc["volumes"])
    volume = {target: source for source, target in mounts.items()}[db_dir]
    assert volume in compose["volumes"]


def test_listens_in_container_and_publishes_on_loopback(compose: dict[str, Any]) -> None:
    svc = compose["services"]["bridge"]
    assert svc["environment"]["BRIDGE_HOST"] == "0.0.0.0"
    assert int(svc["environment"]["BRIDGE_PORT"]) == CONTAINER_PORT
    for svc_name, spec in compose["services"].items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (svc_name, port)
    assert svc["ports"] == [f"127.0.0.1:{CONTAINER_PORT}:{CONTAINER_PORT}"]


def test_stop_grace_covers_the_drain(compose: dict[str, Any]) -> None:
    svc = compose["services"]["bridge"]
    assert svc["stop_signal"] == "SIGTERM"
    assert _seconds(svc["stop_grace_period"]) >= drain_timeout_s()


def test_no_secrets_inline(compose: dict[str, Any]) -> None:
    svc = compose["services"]["bridge"]
    assert not set(svc["environment"]) & set(SECRET_ENV)
    assert svc["env_file"] == ["bridge.env"]
    example = parse_env_file(DEPLOY / "bridge.env.example")
    for name in SECRET_ENV:
        assert example[name] == "", f"{name} must be blank in the template"
    # The filled-in copy is never committed.
    ignored = (DEPLOY / ".gitignore").read_text().splitlines()
    assert "bridge.env" in ignored


def test_env_template_and_compose_env_make_a_valid_config(compose: dict[str, Any]) -> None:
    env = parse_env_file(DEPLOY / "bridge.env.example")
    env |= {name: DUMMY_SECRET for name in SECRET_ENV}
    env["TWILIO_ACCOUNT_SID"] = "AC00000000000000000000000000000000"
    env |= {k: _unset(v) for k, v in compose["services"]["bridge"]["environment"].items()}
    cfg = load_config(None, env=env)
    assert cfg.server.host == "0.0.0.0" and cfg.server.port == CONTAINER_PORT
    assert cfg.store.db == "/data/bridge.db"
    assert cfg.public_url.startswith("https://")


def test_env_template_names_every_documented_variable() -> None:
    """Every environment variable the config reads appears in the template or compose.

    A new ``env=`` key in bridge/config.py needs a line in deploy/bridge.env.example.
    """
    import dataclasses

    from bridge.config import Config

    names: set[str] = set()
    for section in dataclasses.fields(Config):
        if section.name == "routes":
            continue
        for f in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            if f.metadata.get("env"):
                names.add(f.metadata["env"])
    provided = set(parse_env_file(DEPLOY / "bridge.env.example"))
    provided |= set(
        load_yaml_docs(DEPLOY / "docker-compose.yml")[0]["services"]["bridge"]["environment"]
    )
    assert names - provided == set()


def test_prometheus_is_optional_and_scrapes_the_bridge(compose: dict[str, Any]) -> None:
    prom = compose["services"]["prometheus"]
    assert prom["profiles"] == ["monitoring"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    [job] = load_yaml_docs(DEPLOY / "prometheus.yml")[0]["scrape_configs"]
    assert job["metrics_path"] == METRICS
    assert job["static_configs"][0]["targets"] == [f"bridge:{CONTAINER_PORT}"]
    assert "profiles" not in compose["services"]["bridge"]  # the bridge always starts


def test_postgres_is_optional_private_and_its_password_not_inline(
    compose: dict[str, Any],
) -> None:
    pg = compose["services"]["postgres"]
    assert pg["profiles"] == ["postgres"]
    assert "ports" not in pg  # reached on the compose network only
    assert "POSTGRES_PASSWORD" not in pg["environment"]
    assert "postgres.env" in (DEPLOY / ".gitignore").read_text().splitlines()
    env = compose["services"]["bridge"]["environment"]
    assert env["BRIDGE_DB"].startswith("${BRIDGE_DB:-")  # set → PostgreSQL, else SQLite
