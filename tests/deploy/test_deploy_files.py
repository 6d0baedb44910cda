"""scripts/deploy: the Dockerfile passes hadolint, the Kubernetes manifests validate against the Kubernetes
schemas (kubernetes-validate, strict), they agree with the server (health service names, drain time,
config), and a broken file fails each check."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from router.config.settings import load_config
from router.rpc.server import COMPLETION_HEALTH_SERVICE
from tests.deploy.cluster import ROOT

DEPLOY = ROOT / "scripts" / "deploy"
K8S = DEPLOY / "k8s"
# gRPC probes are GA since 1.27; 1.30 is what the managed offerings all run or exceed.
KUBERNETES_VERSION = "1.30.0"


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    return subprocess.run([binary, str(dockerfile)], capture_output=True, text=True, check=False, timeout=60)


def _manifests() -> dict[str, list[dict[str, Any]]]:
    """Every Kubernetes resource file (all but kustomization.yaml), parsed."""
    yaml = YAML(typ="safe")
    return {
        path.name: [doc for doc in yaml.load_all(path.read_text()) if doc]
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def _resource(kind: str) -> dict[str, Any]:
    return next(doc for docs in _manifests().values() for doc in docs if doc["kind"] == kind)


def test_the_dockerfile_passes_hadolint() -> None:
    result = _hadolint(DEPLOY / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:3.11-slim\nRUN cd /tmp && apt-get install gcc\n")
    result = _hadolint(broken)
    assert result.returncode != 0
    assert "DL3003" in result.stdout  # `cd` instead of WORKDIR


def test_the_image_is_multi_stage_slim_non_root_without_a_compiler_with_models_and_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = text.split("\nFROM ")
    assert len(stages) == 3, "a build stage and a runtime stage"
    assert "python:3.11-slim" in stages[0]
    final = stages[-1]
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert not any(tool in final for tool in ("build-essential", "gcc", "cmake", "apt-get install"))
    assert "USER 10001" in final
    assert "site-packages/models/" in stages[1]  # the shipped models, where classifier/paths.py looks
    assert 'CMD ["rightsize", "health"' in final and COMPLETION_HEALTH_SERVICE in final


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    manifests = _manifests()
    kinds = {doc["kind"] for docs in manifests.values() for doc in docs}
    assert kinds >= {
        "ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget",
        "HorizontalPodAutoscaler", "CronJob",
    }  # fmt: skip
    for docs in manifests.values():
        for doc in docs:
            kubernetes_validate.validate(
                doc, KUBERNETES_VERSION, strict=True
            )  # raises when invalid, naming why
    listed = YAML(typ="safe").load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(manifests)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d["spec"].update(replicas="three"), "is not of type 'integer'"),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0].update(readinessProbes={}),
            "readinessProbes",
        ),
    ],
)
def test_a_broken_manifest_fails_validation(change: Any, why: str) -> None:
    broken = copy.deepcopy(_resource("Deployment"))
    change(broken)
    with pytest.raises(kubernetes_validate.ValidationError, match=why):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_probes_and_the_drain_match_the_server(tmp_path: Path) -> None:
    pod = _resource("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["grpc"].get("service") == COMPLETION_HEALTH_SERVICE
    assert container["livenessProbe"]["grpc"].get("service", "") == ""  # the server's own health
    config = _configmap_config(tmp_path)
    pre_stop_s = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain_s = pre_stop_s + config.server.grace_period_s + 2 * config.log.timeout_ms / 1000
    assert pod["terminationGracePeriodSeconds"] > drain_s
    assert config.log.url.startswith("postgresql://") and config.log.sync == "strict"
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert str(config.models.root) == mounts["models"]
    assert str(config.log.spill_dir) == mounts["spill"]
    headless = [doc for doc in _manifests()["service.yaml"] if doc["spec"].get("clusterIP") == "None"]
    assert len(headless) == 1


def test_the_configmap_holds_a_valid_config(tmp_path: Path) -> None:
    config = _configmap_config(tmp_path)
    assert config.server.address == "0.0.0.0:50051"
    assert config.routing.target_large_fraction is not None


def _configmap_config(tmp_path: Path) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(_resource("ConfigMap")["data"]["config.yaml"])
    return load_config(path, environ={})
