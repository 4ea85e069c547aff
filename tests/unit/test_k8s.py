"""Kubernetes manifests: probes hit the worker's real endpoints and secrets stay out of ConfigMaps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from anomstream.config import MetricsSettings, Settings, UiSettings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def _all() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


def _docs() -> dict[str, dict[str, Any]]:
    """One document per kind; the worker's for kinds the explorer has too (Deployment, Service)."""
    docs: dict[str, dict[str, Any]] = {}
    for doc in _all():
        if doc.get("metadata", {}).get("name", "").endswith("-explorer"):
            continue
        docs[doc["kind"]] = doc
    return docs


def test_probes_use_health_endpoints_on_metrics_port() -> None:
    """Liveness uses /healthz and readiness /readyz, on the port the worker serves by default."""
    container = _docs()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == MetricsSettings().port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_configmap_names_only_real_settings_and_no_secrets() -> None:
    """Every ANOMSTREAM_ variable in the ConfigMap is a real setting; no secret sits in it."""
    data = _docs()["ConfigMap"]["data"]
    fields = {
        f"ANOMSTREAM_{section.upper()}__{name.upper()}"
        for section, model in Settings.model_fields.items()
        if hasattr(model.annotation, "model_fields")
        for name in model.annotation.model_fields  # type: ignore[union-attr]  # checked by hasattr
    } | {f"ANOMSTREAM_{name.upper()}" for name in Settings.model_fields}
    env = {k for k in data if k.startswith("ANOMSTREAM_")}
    assert env <= fields, env - fields
    assert not any(word in k for k in env for word in ("PASSWORD", "HMAC_KEY", "SECRET"))


def test_keda_scales_the_worker_deployment_on_its_group_lag() -> None:
    """The ScaledObject targets the worker Deployment and the same group and topic it consumes."""
    docs = _docs()
    trigger = docs["ScaledObject"]["spec"]["triggers"][0]
    assert docs["ScaledObject"]["spec"]["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == docs["ConfigMap"]["data"]["ANOMSTREAM_KAFKA__GROUP_ID"]
    assert trigger["metadata"]["topic"] == docs["ConfigMap"]["data"]["ANOMSTREAM_TOPICS__EVENTS"]


def test_explorer_serves_ui_with_a_mounted_token_and_a_service() -> None:
    """The explorer runs `ui` on a port its Service and probes name, reads its token from a mounted secret."""
    docs = {(d["kind"], d.get("metadata", {}).get("name", "")): d for d in _all()}
    deploy = docs["Deployment", "anomstream-explorer"]
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["args"] == ["ui"]
    assert container["ports"][0]["containerPort"] == int(env["ANOMSTREAM_UI__PORT"]) == UiSettings().port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(env["ANOMSTREAM_UI__FEEDBACK_TOKEN_FILE"].startswith(m) for m in mounts)
    service = docs["Service", "anomstream-explorer"]
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    assert "explorer.yaml" in (K8S / "kustomization.yaml").read_text()
    data = _docs()["ConfigMap"]["data"]
    assert data["ANOMSTREAM_TOPICS__SCORES"], "the explorer plots the score topic"
    assert data["ANOMSTREAM_TOPICS__FEEDBACK"]
