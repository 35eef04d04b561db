"""Every setting the code reads is declared in the settings, from the environment."""

from __future__ import annotations

from django.conf import settings

from tests.test_embedded_startup import run_python


def test_work_queue_last_polled_timeout_is_declared_with_prefects_default(tmp_path):
    assert settings.WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS == 60
    result = run_python(
        tmp_path / "var",
        "import config.settings.base as s; print(s.WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS)",
        WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS="90",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "90"


def test_outbound_webhook_allowed_cidrs_is_declared_empty_by_default(tmp_path):
    assert hasattr(settings, "OUTBOUND_WEBHOOK_ALLOWED_CIDRS")
    result = run_python(
        tmp_path / "var",
        "import config.settings.base as s; print(s.OUTBOUND_WEBHOOK_ALLOWED_CIDRS)",
        OUTBOUND_WEBHOOK_ALLOWED_CIDRS="127.0.0.1/32,10.1.0.0/16",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['127.0.0.1/32', '10.1.0.0/16']"
    refused = run_python(
        tmp_path / "var2", "import config.settings.base", OUTBOUND_WEBHOOK_ALLOWED_CIDRS="127.0.0.1/33"
    )
    assert refused.returncode != 0 and "is not a CIDR" in refused.stderr


def test_outbound_webhook_deadline_is_declared_and_must_be_positive(tmp_path):
    assert settings.OUTBOUND_WEBHOOK_DEADLINE_SECONDS == 30.0
    show = "import config.settings.base as s; print(s.OUTBOUND_WEBHOOK_DEADLINE_SECONDS)"
    result = run_python(tmp_path / "var", show, OUTBOUND_WEBHOOK_DEADLINE_SECONDS="5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5.0"
    refused = run_python(tmp_path / "var2", show, OUTBOUND_WEBHOOK_DEADLINE_SECONDS="0")
    assert refused.returncode != 0 and "must be a positive number" in refused.stderr


def test_celery_broker_visibility_timeout_feeds_the_redis_transport(tmp_path):
    show = (
        "import config.settings.base as s; "
        "print(s.CELERY_BROKER_VISIBILITY_TIMEOUT, s.CELERY_BROKER_TRANSPORT_OPTIONS.get('visibility_timeout'))"
    )
    redis = {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}
    default = run_python(tmp_path / "var", show, **redis)
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == "3600 3600"
    short = run_python(tmp_path / "var2", show, CELERY_BROKER_VISIBILITY_TIMEOUT="5", **redis)
    assert short.returncode == 0, short.stderr
    assert short.stdout.strip() == "5 5"
    # The filesystem broker has no visibility timeout: its own options are left as they are.
    filesystem = run_python(tmp_path / "var3", show, CELERY_BROKER_VISIBILITY_TIMEOUT="5")
    assert filesystem.returncode == 0, filesystem.stderr
    assert filesystem.stdout.strip() == "5 None"
    refused = run_python(tmp_path / "var4", show, CELERY_BROKER_VISIBILITY_TIMEOUT="0", **redis)
    assert refused.returncode != 0 and "CELERY_BROKER_VISIBILITY_TIMEOUT" in refused.stderr


def test_redis_timeout_bounds_every_redis_client_and_the_broker_sweeps_for_lost_tasks(tmp_path):
    show = (
        "import config.settings.base as s; o = s.CELERY_BROKER_TRANSPORT_OPTIONS; "
        "c = s.CACHES['default']['OPTIONS']; "
        "print(c['socket_timeout'], c['socket_connect_timeout'], o['socket_connect_timeout'], "
        "o['unacked_restore_interval'], o['unacked_restore_throttle'], o['unacked_mutex_expire'])"
    )
    redis = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DATABASE_URL": "postgres://u@127.0.0.1/db",
        "SECRET_KEY": "x" * 50,
    }
    default = run_python(tmp_path / "var", show, **redis)
    assert default.returncode == 0, default.stderr
    # Production's hour-long visibility timeout: a sweep every 10 s (kombu's default scans every 100 s).
    assert default.stdout.split() == ["1.0", "1.0", "1.0", "10", "1", "300"]
    short = run_python(
        tmp_path / "var2", show, REDIS_TIMEOUT_SECONDS="0.25", CELERY_BROKER_VISIBILITY_TIMEOUT="5", **redis
    )
    assert short.returncode == 0, short.stderr
    assert short.stdout.split() == ["0.25", "0.25", "0.25", "1", "1", "10"]
    refused = run_python(tmp_path / "var3", show, REDIS_TIMEOUT_SECONDS="0", **redis)
    assert refused.returncode != 0 and "REDIS_TIMEOUT_SECONDS" in refused.stderr
