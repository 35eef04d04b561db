"""Importing the settings writes nothing; start-up (config.embedded.prepare) creates what the embedded
default keeps under VAR_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Variables that would take a process off the embedded default or give it a key.
_SERVER_VARIABLES = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CELERY_BROKER_URL", "DATABASE_POOL"}


def run_python(var_dir: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in _SERVER_VARIABLES}
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings.base", "VAR_DIR": str(var_dir), **env})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_importing_the_settings_creates_nothing(tmp_path):
    var_dir = tmp_path / "var"
    result = run_python(
        var_dir,
        "import config.settings.base as s; from django.conf import settings; "
        "print(repr(s.SECRET_KEY), settings.CELERY_BROKER_URL, settings.DATABASES['default']['ENGINE'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["''", "filesystem://", "django.db.backends.sqlite3"]
    assert not var_dir.exists()
    assert tree(tmp_path) == []


def test_importing_the_settings_reads_an_existing_key(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    (var_dir / "secret_key").write_text("k" * 64 + "\n")
    result = run_python(var_dir, "import config.settings.base as s; print(s.SECRET_KEY)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "k" * 64
    assert tree(var_dir) == ["secret_key"]


def test_prepare_creates_what_the_embedded_default_needs(tmp_path):
    var_dir = tmp_path / "var"
    code = (
        "from config.embedded import prepare; prepare(); "
        "from django.conf import settings; print(settings.SECRET_KEY)"
    )
    first = run_python(var_dir, code)
    assert first.returncode == 0, first.stderr
    key_file = var_dir / "secret_key"
    key = key_file.read_text().strip()
    assert len(key) >= 50 and oct(key_file.stat().st_mode)[-3:] == "600"
    # Django read the key prepare() generated in the same process.
    assert first.stdout.strip() == key
    assert tree(var_dir) == [
        "broker",
        "broker/control",
        "broker/processed",
        "broker/queue",
        "secret_key",
    ]
    again = run_python(var_dir, code)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == key == key_file.read_text().strip()


def test_prepare_creates_nothing_for_a_server_deployment(tmp_path):
    var_dir = tmp_path / "var"
    result = run_python(
        var_dir,
        "from config.embedded import prepare; prepare()",
        DATABASE_URL="postgres://app@db.internal:5432/app",
        SECRET_KEY="s" * 64,
        REDIS_URL="redis://cache.internal:6379/0",
    )
    assert result.returncode == 0, result.stderr
    assert not var_dir.exists()


def test_the_filesystem_broker_gets_its_folders_without_the_embedded_database(tmp_path):
    var_dir = tmp_path / "var"
    result = run_python(
        var_dir,
        "from config.embedded import prepare; prepare()",
        DATABASE_URL="postgres://app@db.internal:5432/app",
        SECRET_KEY="s" * 64,
    )
    assert result.returncode == 0, result.stderr
    assert tree(var_dir) == ["broker", "broker/control", "broker/processed", "broker/queue"]


def test_a_celery_app_prepares_when_it_loads_its_configuration(tmp_path):
    var_dir = tmp_path / "var"
    result = run_python(
        var_dir,
        "from config.celery import app; import pathlib, os; "
        "assert not pathlib.Path(os.environ['VAR_DIR']).exists(); "
        "print(app.conf.broker_transport_options['data_folder_in'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(var_dir.resolve() / "broker" / "queue")
    assert (var_dir / "secret_key").exists() and (var_dir / "broker" / "queue").is_dir()
