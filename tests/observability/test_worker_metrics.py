"""Metrics of the Celery worker and beat on ``METRICS_PORT`` (``config.metrics_server``): who may read
them, and a real beat and worker whose ports show what they sent and ran."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from config.metrics_server import make_server
from core import metrics

ROOT = Path(__file__).resolve().parents[2]
# Every five seconds (config.celery): beat sends it about five seconds after it starts.
FIVE_SECOND_ENTRY, FIVE_SECOND_TASK = "orchestration-late-runs", "orchestration.mark_late_runs"


def scrape(port: int, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - a local test server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def key(name: str, **labels: str) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def server():
    served = make_server(0)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served.server_address[1]
    served.shutdown()
    served.server_close()


class TestWhoMayRead:
    def test_loopback_reads_by_default(self, server):
        metrics.record_task("tests.example", "SUCCESS", 0.01)
        status, text = scrape(server)
        assert status == 200
        found = samples(text)
        assert found[key("controlplane_celery_tasks_total", task="tests.example", outcome="SUCCESS")] >= 1
        assert found[key("controlplane_celery_task_duration_seconds_count", task="tests.example")] >= 1

    def test_an_address_not_listed_gets_404(self, server, settings):
        settings.METRICS_ALLOWED_ADDRESSES = ["10.0.0.0/8"]
        status, text = scrape(server)
        assert status == 404 and "controlplane" not in text

    def test_a_forged_forwarded_for_does_not_open_it(self, server, settings):
        settings.METRICS_ALLOWED_ADDRESSES = ["192.0.2.0/24"]
        assert scrape(server, {"X-Forwarded-For": "192.0.2.7"})[0] == 404

    def test_behind_a_trusted_proxy_the_client_address_decides(self, server, settings):
        settings.TRUSTED_PROXIES = ["127.0.0.0/8"]
        settings.METRICS_ALLOWED_ADDRESSES = ["192.0.2.0/24"]
        assert scrape(server, {"X-Forwarded-For": "192.0.2.7"})[0] == 200
        assert scrape(server, {"X-Forwarded-For": "198.51.100.1"})[0] == 404

    def test_only_the_metrics_path(self, server):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{server}/healthz", timeout=5)  # noqa: S310
        assert refused.value.code == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql", reason="needs PostgreSQL"
)
def test_beat_and_a_prefork_worker_serve_what_they_sent_and_ran(tmp_path, db):
    """A beat and a worker (prefork, one pool process) on a broker of their own (the filesystem
    transport in a scratch directory, so no other test's queue or beat lock is touched), each with
    ``METRICS_PORT``: beat's port shows its tick, the lock and the entry it sent; the worker's shows
    the task its pool process ran, summed through ``PROMETHEUS_MULTIPROC_DIR``."""
    var_dir = tmp_path / "var"
    started = time.time()
    procs = {}
    ports = {"beat": _free_port(), "worker": _free_port()}
    for role, argv in (
        ("beat", ["beat", "-s", str(tmp_path / "beat-schedule")]),
        (
            "worker",
            ["worker", "-P", "prefork", "--concurrency", "1", "--without-heartbeat", "--without-mingle"],
        ),
    ):
        metrics_dir = tmp_path / f"metrics-{role}"
        metrics_dir.mkdir()
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("REDIS_URL", "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.base",
            PYTHONUNBUFFERED="1",
            VAR_DIR=str(var_dir),
            DATABASE_URL=_database_url(),
            SECRET_KEY="worker-metrics-test-secret-key-0123456789abcdef",
            METRICS_PORT=str(ports[role]),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        )
        log = open(tmp_path / f"{role}.log", "w")  # noqa: SIM115 (closed with the process)
        procs[role] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *argv, "-l", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        beat: dict = {}
        worker: dict = {}
        # Seconds on an idle machine: each process starts (~2 s), beat sends its 5-second entries,
        # the worker's broker poll (~1 s) finds one; a loaded machine takes longer.
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            status, text = scrape(ports["beat"])
            beat = samples(text) if status == 200 else beat
            status, text = scrape(ports["worker"])
            worker = samples(text) if status == 200 else worker
            ran = worker.get(key("controlplane_celery_tasks_total", task=FIVE_SECOND_TASK, outcome="SUCCESS"))
            sent = beat.get(
                key("controlplane_beat_entry_last_sent_timestamp_seconds", entry=FIVE_SECOND_ENTRY)
            )
            if ran and sent:
                break
            time.sleep(0.5)
        logs = {role: (tmp_path / f"{role}.log").read_text()[-3000:] for role in procs}
        assert sent and sent >= started, logs
        assert beat[key("controlplane_beat_lock_held")] == 1.0, logs
        assert beat[key("controlplane_beat_last_tick_timestamp_seconds")] >= sent - 1, logs
        assert ran and ran >= 1, logs
        assert worker[key("controlplane_celery_task_duration_seconds_count", task=FIVE_SECOND_TASK)] >= 1, (
            logs
        )
        # The worker's pool process wrote the figures: its main process only serves them.
        assert len(list((tmp_path / "metrics-worker").iterdir())) >= 1
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
