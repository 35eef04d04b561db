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
