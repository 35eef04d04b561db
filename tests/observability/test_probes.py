"""``/healthz`` (the process), ``/readyz`` (database, Redis, broker) and ``/api/health`` (database)."""

from __future__ import annotations

import time

import pytest
from django.db import connection


@pytest.mark.django_db
class TestHealthz:
    def test_answers_without_the_database(self, client, django_assert_num_queries):
        with django_assert_num_queries(0):
            response = client.get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok"}

    def test_answers_a_probe_by_pod_address_over_http(self, client, settings):
        # A kubelet sends the pod's IP as Host and never follows the HTTPS redirect.
        settings.SECURE_SSL_REDIRECT = True
        response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
        assert response.status_code == 200
        assert client.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code in (200, 503)

    def test_only_reads(self, client):
        assert client.post("/healthz").status_code == 405


@pytest.mark.django_db(transaction=True)
class TestReadyz:
    def test_ready_when_every_dependency_answers(self, client, settings):
        response = client.get("/readyz")
        assert response.status_code == 200, response.content
        checks = response.json()["checks"]
        assert checks["database"] == "ok" and checks["broker"] == "ok"
        assert checks["redis"] == ("ok" if settings.REDIS_URL else "skipped")

    def test_redis_down_is_503_naming_it_within_the_timeout(self, client, settings):
        settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
        settings.READINESS_TIMEOUT_SECONDS = 1.0
        started = time.monotonic()
        response = client.get("/readyz")
        assert time.monotonic() - started < 3
        assert response.status_code == 503
        assert response.json()["failed"] == ["redis"]
        assert response.json()["checks"]["database"] == "ok"

    def test_broker_unreachable_is_503_naming_it(self, client, settings):
        from config.celery import app

        previous = app.conf.broker_url
        app.conf.broker_url = "redis://127.0.0.1:1/0"
        settings.READINESS_TIMEOUT_SECONDS = 1.0
        try:
            response = client.get("/readyz")
        finally:
            app.conf.broker_url = previous
        assert response.status_code == 503 and "broker" in response.json()["failed"]

    def test_database_down_is_503_naming_it(self, client, monkeypatch):
        from config import observability

        def refuse():
            raise connection.Database.OperationalError("connection refused")

        monkeypatch.setattr(observability, "_check_database", refuse)
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json()["failed"] == ["database"]

    def test_api_health_still_checks_the_database(self, client):
        assert client.get("/api/health").json() == {"status": "ok", "database": "ok"}
