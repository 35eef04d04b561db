"""Settings come from the environment and are safe by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_manage(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "DEBUG",
            "PUBLIC_URL",
            "ALLOWED_HOSTS",
            "CELERY_BROKER_URL",
            "DATABASE_POOL",
        }
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings.base", "VAR_DIR": str(tmp_path / "var"), **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


PRODUCTION = {
    "DATABASE_URL": "postgres://app@db.internal:5432/app",
    "SECRET_KEY": "x" * 20 + "Kq8#vB2@pL9!mZ4$wR7^tY1&uI3*oP6(aS5)dF0_gH-jJ+kK=lL",
    "PUBLIC_URL": "https://flows.example.com",
    "ALLOWED_HOSTS": "flows.example.com",
    "REDIS_URL": "redis://cache.internal:6379/0",
}


def test_check_deploy_is_clean_with_production_variables(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_secret_key_is_required_outside_the_embedded_default(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = run_manage(tmp_path, "check", **env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_embedded_default_generates_and_keeps_a_secret_key(tmp_path):
    assert run_manage(tmp_path, "check").returncode == 0
    key_file = tmp_path / "var" / "secret_key"
    first = key_file.read_text()
    assert len(first) >= 50 and oct(key_file.stat().st_mode)[-3:] == "600"
    assert run_manage(tmp_path, "check").returncode == 0
    assert key_file.read_text() == first


def _setting(tmp_path, expression: str, **env: str) -> str:
    result = run_manage(
        tmp_path, "shell", "-v", "0", "-c", f"from django.conf import settings; print({expression})", **env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_safe_defaults(tmp_path):
    assert _setting(tmp_path, "settings.DEBUG") == "False"
    # Plain HTTP on the embedded default: cookies must work over http://127.0.0.1.
    assert _setting(tmp_path, "settings.SESSION_COOKIE_SECURE") == "False"
    # Behind HTTPS: secure cookies, HSTS and the redirect by default.
    values = _setting(
        tmp_path,
        "settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT, "
        "settings.SECURE_HSTS_SECONDS > 0",
        **PRODUCTION,
    )
    assert values == "True True True True"


def test_broker_and_cache_follow_redis_url(tmp_path):
    assert _setting(tmp_path, "settings.CELERY_BROKER_URL") == "filesystem://"
    assert _setting(tmp_path, "settings.DATABASES['default']['ENGINE']") == "django.db.backends.sqlite3"
    assert _setting(
        tmp_path,
        "settings.CELERY_BROKER_URL, settings.CACHES['default']['BACKEND'], "
        "settings.CHANNEL_LAYERS['default']['BACKEND']",
        **PRODUCTION,
    ) == ("redis://cache.internal:6379/0 config.cache.RedisCache channels_redis.core.RedisChannelLayer")


def test_env_example_documents_every_variable():
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("##")
    }
    source = (ROOT / "config" / "settings" / "base.py").read_text()
    import re

    used = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', source))
    assert used, "no variables found"
    assert used <= documented, f"undocumented: {sorted(used - documented)}"


@pytest.mark.django_db
def test_health_endpoint(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_unknown_api_paths_answer_json_404(client):
    response = client.get("/api/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_postgresql_connections_come_from_a_bounded_pool(tmp_path):
    """Under ASGI, per-thread persistent connections pile up; production uses a pool per process."""
    env = {k: v for k, v in PRODUCTION.items()}
    assert (
        _setting(
            tmp_path,
            "settings.DATABASES['default']['OPTIONS']['pool']['max_size'], "
            "settings.DATABASES['default']['CONN_MAX_AGE']",
            **env,
        )
        == "16 0"
    )
    assert (
        _setting(
            tmp_path,
            "'pool' in settings.DATABASES['default'].get('OPTIONS', {})",
            DATABASE_POOL="false",
            **env,
        )
        == "False"
    )


def test_persistent_connections_are_checked_before_use_and_pooled_ones_are_swept_when_one_is_lost(tmp_path):
    # psycopg_pool's check before use sleeps 1 s, 2 s, 4 s… between the dead connections a restart
    # leaves; pooled connections are handed out unchecked and a lost one sweeps the pool
    # (core.dbpool, tests/core/test_dbpool.py).
    expected = {"true": "False", "false": "True"}
    for pool, checks in expected.items():
        setting = "settings.DATABASES['default']['CONN_HEALTH_CHECKS']"
        assert _setting(tmp_path, setting, **PRODUCTION, DATABASE_POOL=pool) == checks, pool
