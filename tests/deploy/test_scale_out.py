"""The deploy files run the bridge as several workers over a shared store (issue 15)."""

from __future__ import annotations

import re
from typing import Any

from bridge.config import load_config
from bridge.telephony.shared_limits import enabled as shared_limits_enabled

from .conftest import DEPLOY, DUMMY_SECRET, K8S, SECRET_ENV, load_yaml_docs, parse_env_file


def _unset(value: str) -> str:
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _compose() -> dict[str, Any]:
    return load_yaml_docs(DEPLOY / "docker-compose.yml")[0]


def _secrets() -> dict[str, str]:
    env = {name: DUMMY_SECRET for name in SECRET_ENV}
    env["TWILIO_ACCOUNT_SID"] = "AC00000000000000000000000000000000"
    return env


def test_compose_runs_workers_that_share_the_limits() -> None:
    svc = _compose()["services"]["bridge"]
    env = parse_env_file(DEPLOY / "bridge.env.example") | _secrets()
    env |= {k: _unset(v) for k, v in svc["environment"].items()}
    cfg = load_config(None, env=env)
    assert cfg.server.workers == 2
    assert shared_limits_enabled(cfg)  # the workers share the SQLite file's caps
    # The same with the PostgreSQL profile's DSN.
    pg = load_config(None, env=env | {"BRIDGE_DB": "postgresql://bridge@postgres:5432/bridge"})
    assert pg.server.workers == 2 and shared_limits_enabled(pg)


def test_compose_bridge_waits_for_postgres_only_when_its_profile_runs() -> None:
    compose = _compose()
    dep = compose["services"]["bridge"]["depends_on"]["postgres"]
    assert dep == {"condition": "service_healthy", "required": False}
    assert "healthcheck" in compose["services"]["postgres"]


def test_k8s_pods_run_workers_and_take_the_dsn_from_the_secret() -> None:
    docs = {d["kind"]: d for f in K8S.glob("*.yaml") for d in load_yaml_docs(f)}
    data = docs["ConfigMap"]["data"]
    cfg = load_config(None, env={**data, **_secrets()})
    assert cfg.server.workers == 2
    [container] = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    # The Secret comes after the ConfigMap: its BRIDGE_DB (a DSN) wins over the SQLite path.
    sources = [next(iter(s.values()))["name"] for s in container["envFrom"]]
    assert sources == ["bridge-config", "bridge-secrets"]
    assert "BRIDGE_DB" not in {e["name"] for e in container.get("env", [])}
    # One core requested per worker at most; at least half a core each.
    cpu = float(container["resources"]["requests"]["cpu"].removesuffix("m")) / (
        1000 if container["resources"]["requests"]["cpu"].endswith("m") else 1
    )
    assert 0.5 * cfg.server.workers <= cpu <= cfg.server.workers
