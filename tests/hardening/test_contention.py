"""Contention on SQLite: writers wait their turn; what still cannot get the lock is a 503 with
``Retry-After`` (which the client retries) and writes nothing, never a 500.

A database named by ``DATABASE_URL=sqlite:///…`` is opened exactly like the embedded default: WAL,
write transactions that take the lock when they begin (so a transaction that read first never fails
to upgrade, which no busy timeout covers), and a busy timeout. ``tests/live/test_contention_live.py``
drives every write route the client uses from many clients at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from orchestration.models import FlowRun, FlowRunState
from tests.conftest import bearer

ROOT = Path(__file__).resolve().parents[2]
_SHOW_OPTIONS = (
    "import json; from config.settings import base; "
    "print(json.dumps({'engine': base.DATABASES['default']['ENGINE'], "
    "'options': base.DATABASES['default'].get('OPTIONS', {})}))"
)


def _database_settings(tmp_path: Path, **env: str) -> dict:
    """The database settings a fresh process reads from ``env`` (nothing of this process's)."""
    clean = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SQLITE_BUSY_TIMEOUT")
    }
    clean.update({"VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": "x" * 50, **env})
    out = subprocess.run(
        [sys.executable, "-c", _SHOW_OPTIONS], env=clean, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


class TestSqliteByUrlIsOpenedLikeTheEmbeddedDefault:
    def test_the_same_options(self, tmp_path):
        embedded = _database_settings(tmp_path)
        by_url = _database_settings(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/by-url.sqlite3")
        assert embedded["engine"] == by_url["engine"] == "django.db.backends.sqlite3"
        assert by_url["options"] == embedded["options"]
        options = by_url["options"]
        assert options["transaction_mode"] == "IMMEDIATE"
        assert "journal_mode=WAL" in options["init_command"]
        assert options["timeout"] >= 20

    def test_the_busy_timeout_is_a_setting_and_the_url_may_override_it(self, tmp_path):
        assert _database_settings(tmp_path, SQLITE_BUSY_TIMEOUT="7.5")["options"]["timeout"] == 7.5
        url = f"sqlite:///{tmp_path}/by-url.sqlite3?timeout=3"
        options = _database_settings(tmp_path, DATABASE_URL=url)["options"]
        assert options["timeout"] == 3 and options["transaction_mode"] == "IMMEDIATE"

    def test_postgresql_gets_none_of_it(self, tmp_path):
        pg = _database_settings(tmp_path, DATABASE_URL="postgres://u:p@127.0.0.1:5432/db")
        assert "transaction_mode" not in pg["options"] and "timeout" not in pg["options"]


@pytest.fixture
def short_busy_timeout(monkeypatch):
    """This process's connections wait 0.3 s for the write lock instead of 20 (a new connection
    reads the option when it opens)."""
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.3)
    connection.close()
    yield
    connection.close()


@pytest.fixture
def writer_holding_the_lock():
    """Another process's writer (a plain sqlite3 connection to the same file) holding the write lock
    until the test ends."""
    other = sqlite3.connect(settings.DATABASES["default"]["TEST"]["NAME"], timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    yield other
    other.execute("ROLLBACK")
    other.close()


@pytest.mark.django_db(transaction=True)
class TestAWriteThatCannotGetTheLock:
    @pytest.fixture(autouse=True)
    def _sqlite_only(self):
        if connection.vendor != "sqlite":
            pytest.skip("the write lock is SQLite's")

    def test_is_a_503_with_retry_after_and_writes_nothing_then_succeeds_on_retry(
        self, tenant, api_client, short_busy_timeout, request
    ):
        client = bearer(api_client, tenant.service_key)
        flow = client.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()
        run = client.post(f"{tenant.prefix}/flow_runs/", {"flow_id": flow["id"]}, format="json").json()
        set_state = f"{tenant.prefix}/flow_runs/{run['id']}/set_state"
        running = {"state": {"type": "RUNNING", "name": "Running"}}
        states_before = FlowRunState.objects.for_workspace(tenant.workspace.id).count()
        runs_before = FlowRun.objects.for_workspace(tenant.workspace.id).count()

        other = request.getfixturevalue("writer_holding_the_lock")
        for path, body in (
            (set_state, running),
            (f"{tenant.prefix}/flow_runs/", {"flow_id": flow["id"]}),
            (f"{tenant.prefix}/v2/concurrency_limits/", {"name": "gcl", "limit": 1}),
            (
                f"{tenant.prefix}/logs/",
                [{"name": "l", "level": 20, "message": "m", "timestamp": "2026-01-01T00:00:00Z"}],
            ),
        ):
            answer = client.post(path, body, format="json")
            assert answer.status_code == 503, (path, answer.status_code, answer.content)
            assert answer["Retry-After"] == "1"
        other.execute("ROLLBACK")
        other.execute("BEGIN")  # the fixture's teardown rolls back again

        assert FlowRunState.objects.for_workspace(tenant.workspace.id).count() == states_before
        assert FlowRun.objects.for_workspace(tenant.workspace.id).count() == runs_before
        # The client's retry, once the lock is free, goes through.
        answer = client.post(set_state, running, format="json")
        assert answer.status_code == 201 and answer.json()["status"] == "ACCEPT", answer.content
