"""Kubernetes manifests: schema-valid offline, and consistent with what the app does."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from bridge.config import load_config
from bridge.metrics import Metrics

from .conftest import (
    CONTAINER_PORT,
    DUMMY_SECRET,
    K8S,
    LIVENESS,
    READINESS,
    SECRET_ENV,
    drain_timeout_s,
    load_yaml_docs,
)

# Oldest and newest Kubernetes versions the manifests are checked against.
K8S_VERSIONS = ("1.29.0", "1.37.0")


def _resources() -> dict[str, dict[str, Any]]:
    kustomization = load_yaml_docs(K8S / "kustomization.yaml")[0]
    out: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in load_yaml_docs(K8S / name):
            out[doc["kind"]] = doc
    return out


@pytest.fixture(scope="module")
def res() -> dict[str, dict[str, Any]]:
    return _resources()


def _container(res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    [c] = res["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    [p] = [p for p in container["ports"] if p["name"] == port]
    return int(p["containerPort"])


def test_kustomization_lists_every_manifest() -> None:
    listed = set(load_yaml_docs(K8S / "kustomization.yaml")[0]["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version: str) -> None:
    kinds = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_yaml_docs(path):
            if doc["kind"] == "Kustomization":
                continue
            kubernetes_validate.validate(doc, version, strict=True)
            kinds.append(doc["kind"])
    assert sorted(kinds) == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Ingress",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
        ]
    )


def test_the_schema_check_can_fail(res: dict[str, dict[str, Any]]) -> None:
    """Guard against a vacuous validator: a typo'd field and a wrong type are caught."""
    bad = yaml.safe_load(yaml.safe_dump(res["Deployment"]))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)
    bad = yaml.safe_load(yaml.safe_dump(res["Deployment"]))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def test_probes_hit_the_health_endpoints_on_the_container_port(
    res: dict[str, dict[str, Any]],
) -> None:
    c = _container(res)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["BRIDGE_HOST"] == "0.0.0.0"
    assert int(env["BRIDGE_PORT"]) == CONTAINER_PORT
    for probe, path in [
        ("livenessProbe", LIVENESS),
        ("startupProbe", LIVENESS),
        ("readinessProbe", READINESS),
    ]:
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        assert _port_number(c, get["port"]) == CONTAINER_PORT, probe


def test_grace_period_covers_prestop_and_drain(res: dict[str, dict[str, Any]]) -> None:
    spec = res["Deployment"]["spec"]["template"]["spec"]
    command = _container(res)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s = float(command[1])
    assert 0 < pre_stop_s <= 30
    assert spec["terminationGracePeriodSeconds"] >= pre_stop_s + drain_timeout_s()
    # A rollout must not take capacity away before new pods are ready.
    assert res["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_runs_as_non_root_with_a_read_only_root(res: dict[str, dict[str, Any]]) -> None:
    pod = res["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    c = _container(res)["securityContext"]
    assert c["allowPrivilegeEscalation"] is False
    assert c["readOnlyRootFilesystem"] is True
    assert c["capabilities"]["drop"] == ["ALL"]
    # Read-only root: the SQLite directory and /tmp must be volumes.
    mounts = {m["mountPath"] for m in _container(res)["volumeMounts"]}
    db = res["ConfigMap"]["data"]["BRIDGE_DB"]  # (a DSN in the Secret overrides it)
    assert db.rsplit("/", 1)[0] in mounts
    assert "/tmp" in mounts


def test_no_secret_values_in_manifests(res: dict[str, dict[str, Any]]) -> None:
    assert "Secret" not in res
    c = _container(res)
    inline = {e["name"] for e in c.get("env", []) if "value" in e}
    assert not inline & set(SECRET_ENV)
    assert {"secretRef": {"name": "bridge-secrets"}} in c["envFrom"]
    # The Secret comes last, so a BRIDGE_DB (PostgreSQL DSN) in it beats the ConfigMap's.
    assert c["envFrom"][-1] == {"secretRef": {"name": "bridge-secrets"}}
    assert "BRIDGE_DB" not in {e["name"] for e in c["env"]}
    config_map = res["ConfigMap"]["data"]
    assert not set(config_map) & set(SECRET_ENV)
    assert "TWILIO_ACCOUNT_SID" not in config_map


def test_the_container_environment_is_a_valid_bridge_config(
    res: dict[str, dict[str, Any]],
) -> None:
    """ConfigMap + env + (dummy) Secret values load without a config error."""
    c = _container(res)
    env = {**res["ConfigMap"]["data"], **{e["name"]: e["value"] for e in c["env"]}}
    env |= {name: DUMMY_SECRET for name in SECRET_ENV}
    env["TWILIO_ACCOUNT_SID"] = "AC00000000000000000000000000000000"
    cfg = load_config(None, env=env)
    assert (cfg.server.host, cfg.server.port) == ("0.0.0.0", CONTAINER_PORT)
    assert cfg.store.db == "/data/bridge.db"
    assert cfg.twilio.signatures_enforced


def test_service_and_ingress_route_to_the_pods(res: dict[str, dict[str, Any]]) -> None:
    svc = res["Service"]
    labels = res["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert res["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "sessionAffinity" not in svc["spec"] or svc["spec"]["sessionAffinity"] == "None"
    [sport] = svc["spec"]["ports"]
    assert _port_number(_container(res), sport["targetPort"]) == CONTAINER_PORT

    ing = res["Ingress"]
    [rule] = ing["spec"]["rules"]
    paths = rule["http"]["paths"]
    # Twilio's routes and the token-protected admin API only: metrics and probes are
    # not published to the internet.
    assert sorted(p["path"] for p in paths) == ["/admin", "/twilio"]
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["name"] == svc["metadata"]["name"]
        assert (
            backend["port"].get("name") == sport["name"]
            or backend["port"].get("number") == sport["port"]
        )
    assert ing["spec"]["tls"][0]["hosts"] == [rule["host"]]
    # WebSocket calls last minutes: proxy timeouts at least the drain timeout.
    ann = ing["metadata"]["annotations"]
    for key in (
        "nginx.ingress.kubernetes.io/proxy-read-timeout",
        "nginx.ingress.kubernetes.io/proxy-send-timeout",
    ):
        assert float(ann[key]) >= drain_timeout_s(), key


def test_hpa_scales_the_deployment_on_active_calls(res: dict[str, dict[str, Any]]) -> None:
    hpa = res["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": res["Deployment"]["metadata"]["name"],
    }
    [metric] = hpa["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert name == "bridge_active_calls"
    # The metric the HPA needs is one the app really exports.
    exported = {m.name for m in Metrics().registry.collect()}
    assert name in exported
    assert hpa["minReplicas"] >= 2
    # The adapter rule exposes exactly that series.
    values = load_yaml_docs(K8S / "extras" / "prometheus-adapter-values.yaml")[0]
    [rule] = values["rules"]["custom"]
    assert rule["seriesQuery"].startswith(name + "{")
    assert rule["name"]["as"] == name


def test_pdb_and_metrics_annotations_select_the_pods(res: dict[str, dict[str, Any]]) -> None:
    labels = res["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert res["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ann = res["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(ann["prometheus.io/port"]) == CONTAINER_PORT
    assert ann["prometheus.io/path"] == "/metrics"


# The namespaces the policy admits: the ingress controller (ingress.yaml's class) and
# Prometheus; the cluster DNS for egress.
INGRESS_NAMESPACE, MONITORING_NAMESPACE = "ingress-nginx", "monitoring"
NS_LABEL = "kubernetes.io/metadata.name"
PRIVATE_V4 = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}


def test_network_policy_admits_only_the_ingress_and_monitoring_namespaces(
    res: dict[str, dict[str, Any]],
) -> None:
    pol = res["NetworkPolicy"]["spec"]
    labels = res["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert pol["podSelector"]["matchLabels"]
    assert pol["podSelector"]["matchLabels"].items() <= labels.items()  # it selects the pods
    assert sorted(pol["policyTypes"]) == ["Egress", "Ingress"]
    assert res["Ingress"]["spec"]["ingressClassName"] == "nginx"
    [rule] = pol["ingress"]  # one rule: no other source, no other port
    sources = [peer["namespaceSelector"]["matchLabels"] for peer in rule["from"]]
    assert all(set(peer) == {"namespaceSelector"} for peer in rule["from"])
    assert sorted(s[NS_LABEL] for s in sources) == [INGRESS_NAMESPACE, MONITORING_NAMESPACE]
    # /metrics shares the HTTP port: that port is what both namespaces reach.
    [port] = rule["ports"]
    c = _container(res)
    assert _port_number(c, port["port"]) == CONTAINER_PORT
    ann = res["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(ann["prometheus.io/port"]) == CONTAINER_PORT
    [svc_port] = res["Service"]["spec"]["ports"]
    assert _port_number(c, svc_port["targetPort"]) == CONTAINER_PORT


def test_network_policy_egress_is_dns_and_public_https_only(
    res: dict[str, dict[str, Any]],
) -> None:
    egress = res["NetworkPolicy"]["spec"]["egress"]
    ports = {(p["port"], p["protocol"]) for rule in egress for p in rule["ports"]}
    assert ports == {(53, "UDP"), (53, "TCP"), (443, "TCP")}
    for rule in egress:
        assert rule.get("to") and rule.get("ports")  # never "anywhere, any port"
        numbers = {p["port"] for p in rule["ports"]}
        if numbers == {53}:
            [peer] = rule["to"]
            assert peer["namespaceSelector"]["matchLabels"] == {NS_LABEL: "kube-system"}
            assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
        else:
            assert numbers == {443}
            blocks = {
                peer["ipBlock"]["cidr"]: set(peer["ipBlock"]["except"]) for peer in rule["to"]
            }
            assert blocks["0.0.0.0/0"] >= PRIVATE_V4  # nothing inside the cluster, no metadata
            assert "fc00::/7" in blocks["::/0"]


def test_the_schema_check_catches_a_bad_network_policy(res: dict[str, dict[str, Any]]) -> None:
    bad = yaml.safe_load(yaml.safe_dump(res["NetworkPolicy"]))
    bad["spec"]["ingress"][0]["form"] = bad["spec"]["ingress"][0].pop("from")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)
