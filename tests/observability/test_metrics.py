"""``/metrics``: who may read it, what it counts, and that several processes add up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import bearer
from tests.orchestration.test_work_pools import make_run

ROOT = Path(__file__).resolve().parents[2]
SET_STATE_ROUTE = (
    "api/accounts/<str:account_ref>/workspaces/<str:workspace_ref>/flow_runs/<str:flow_run_id>/set_state"
)


def samples(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(found, name, **labels) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.django_db
class TestAccess:
    def test_loopback_reads_by_default(self, client):
        assert client.get("/metrics").status_code == 200

    def test_other_addresses_get_404(self, client):
        response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
        assert response.status_code == 404 and b"controlplane" not in response.content

    def test_the_setting_allows_a_network(self, client, settings):
        settings.METRICS_ALLOWED_ADDRESSES = ["10.0.0.0/8"]
        assert client.get("/metrics", REMOTE_ADDR="10.4.5.6").status_code == 200
        assert client.get("/metrics").status_code == 404  # loopback is no longer listed

    def test_a_forged_forwarded_for_does_not_open_it(self, client):
        response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1")
        assert response.status_code == 404

    def test_behind_a_trusted_proxy_the_client_address_decides(self, client, settings):
        settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
        settings.METRICS_ALLOWED_ADDRESSES = ["192.0.2.0/24"]
        allowed = client.get("/metrics", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.7")
        refused = client.get("/metrics", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1")
        assert allowed.status_code == 200 and refused.status_code == 404


@pytest.mark.django_db
class TestWhatIsCounted:
    def test_set_state_by_route_template_status_and_outcome(self, client, tenant, api_client):
        run_id = make_run(tenant, None, state="PENDING")
        dev = bearer(api_client, tenant.service_key)
        before = samples(client)
        accepted = dev.post(
            f"{tenant.prefix}/flow_runs/{run_id}/set_state",
            {"state": {"type": "RUNNING", "name": "Running"}},
            format="json",
        )
        aborted = dev.post(  # RUNNING -> PENDING: Prefect's PreventPendingTransitions aborts it
            f"{tenant.prefix}/flow_runs/{run_id}/set_state",
            {"state": {"type": "PENDING", "name": "Pending"}},
            format="json",
        )
        assert accepted.json()["status"] == "ACCEPT" and aborted.json()["status"] == "ABORT"
        after = samples(client)

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("controlplane_set_state_outcomes_total", kind="flow_run", status="ACCEPT") == 1
        assert delta("controlplane_set_state_outcomes_total", kind="flow_run", status="ABORT") == 1
        labels = {"method": "POST", "route": SET_STATE_ROUTE}
        assert delta("controlplane_http_request_duration_seconds_count", **labels) == 2
        assert delta("controlplane_http_responses_total", status="201", **labels) == 1
        assert delta("controlplane_http_responses_total", status="200", **labels) == 1
        exposition = client.get("/metrics").content.decode()
        assert str(run_id) not in exposition and str(tenant.workspace.id) not in exposition

    def test_unmatched_paths_share_one_label(self, client):
        before = samples(client)
        client.get("/api/no-such-thing/123")
        client.get("/api/no-such-thing/456")
        after = samples(client)
        labels = {"method": "GET", "route": "<unmatched>", "status": "404"}
        name = "controlplane_http_responses_total"
        assert value(after, name, **labels) - value(before, name, **labels) == 2
        assert "no-such-thing" not in client.get("/metrics").content.decode()

    def test_events_ingested(self, client, tenant, api_client):
        import uuid

        from django.utils import timezone

        before = value(samples(client), "controlplane_events_ingested_total")
        event = {
            "id": str(uuid.uuid4()),
            "occurred": timezone.now().isoformat(),
            "event": "my.event",
            "resource": {"prefect.resource.id": "my.resource"},
        }
        response = bearer(api_client, tenant.service_key).post(
            f"{tenant.prefix}/events", [event, event], format="json"
        )
        assert response.status_code in (200, 204), response.content
        assert value(samples(client), "controlplane_events_ingested_total") - before == 1

    def test_ingest_and_trigger_lag_and_the_scheduler_tick(
        self, client, tenant, api_client, django_capture_on_commit_callbacks
    ):
        import datetime as dt

        from orchestration.tasks import schedule_deployments
        from tests.orchestration.automations.engine import automation, emit, event

        before = samples(client)
        dev = bearer(api_client, tenant.service_key)
        automation(dev, tenant, expect=["lag.probe"])
        late = event("lag.probe")  # occurred at the engine's fixed past time: a long ingest lag
        emit(django_capture_on_commit_callbacks, tenant, late)
        schedule_deployments.delay().get()
        after = samples(client)

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        # Each stored event's lag (the automation's own triggered/resolved events included).
        assert delta("controlplane_event_ingest_lag_seconds_count") >= 1
        seconds_ago = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(late["occurred"])).total_seconds()
        assert delta("controlplane_event_ingest_lag_seconds_sum") >= seconds_ago - 5
        assert delta("controlplane_trigger_lag_seconds_count") == 1
        assert 0 <= delta("controlplane_trigger_lag_seconds_sum") < 60  # from arrival, not occurrence
        assert delta("controlplane_scheduler_tick_seconds_count") == 1

    def test_audit_records_waiting_for_their_chain(self, client, tenant):
        from audit import events
        from audit.actors import SYSTEM
        from audit.services import audit_chain_pending, audit_record_pending

        assert value(samples(client), "controlplane_audit_pending_entries") == 0
        audit_record_pending(event=events.ACCOUNT_UPDATED, actor=SYSTEM, account=tenant.account)
        audit_record_pending(event=events.ACCOUNT_UPDATED, actor=SYSTEM, account=tenant.account)
        found = samples(client)
        assert value(found, "controlplane_audit_pending_entries") == 2
        assert 0 <= value(found, "controlplane_audit_pending_oldest_seconds") < 60
        audit_chain_pending()
        found = samples(client)
        assert value(found, "controlplane_audit_pending_entries") == 0
        assert value(found, "controlplane_audit_pending_oldest_seconds") == 0


@pytest.mark.django_db
def test_the_audit_chains_last_verification(client, tenant):
    """Beat's hourly walk of every chain: none broken, then an entry changed behind the
    application's back is found, and the gauges say so (and when)."""
    from django.core.cache import cache
    from django.db import connection

    from audit import events
    from audit.actors import SYSTEM
    from audit.models import AuditLogEntry
    from audit.services import CHAINS_VERIFIED_CACHE_KEY, audit_record
    from audit.tasks import verify_audit_chains

    cache.delete(CHAINS_VERIFIED_CACHE_KEY)
    assert "controlplane_audit_chains_broken" not in {name for name, _ in samples(client)}
    entry = audit_record(event=events.ACCOUNT_UPDATED, actor=SYSTEM, account=tenant.account)
    assert verify_audit_chains() == 0
    found = samples(client)
    assert value(found, "controlplane_audit_chains_broken") == 0
    assert value(found, "controlplane_audit_chain_entries_verified") >= 1
    assert 0 <= time.time() - value(found, "controlplane_audit_chains_verified_timestamp_seconds") < 60

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditlogentry DISABLE TRIGGER audit_entry_append_only")
        AuditLogEntry.objects.filter(pk=entry.pk).update(actor_label="someone else")
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditlogentry ENABLE TRIGGER audit_entry_append_only")
    assert verify_audit_chains() == 1
    assert value(samples(client), "controlplane_audit_chains_broken") == 1


def test_several_processes_add_up(tmp_path, client, monkeypatch, db):
    """Two processes record in their own files; /metrics in a third sums them."""
    script = textwrap.dedent(
        """
        from core import metrics
        metrics.record_set_state("task_run", "WAIT")
        metrics.record_request("GET", "api/health", 200, 0.01)
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    found = samples(client)
    assert value(found, "controlplane_set_state_outcomes_total", kind="task_run", status="WAIT") == 2
    labels = {"method": "GET", "route": "api/health"}
    assert value(found, "controlplane_http_request_duration_seconds_count", **labels) == 2


@pytest.mark.django_db
def test_celery_queue_depth_is_read_from_the_broker(client):
    from kombu import Queue

    from config.celery import app

    name = "controlplane-test-depth"  # a queue of its own: purging it touches no real work
    previous, app.conf.task_default_queue = app.conf.task_default_queue, name
    queue = Queue(name, routing_key=name)
    with app.connection_for_write() as conn:
        queue(conn.default_channel).declare()
        conn.default_channel.queue_purge(name)
        try:
            assert value(samples(client), "controlplane_celery_queue_depth", queue=name) == 0
            producer = conn.Producer()
            for _ in range(3):
                producer.publish({"probe": True}, routing_key=name, declare=[queue])
            assert value(samples(client), "controlplane_celery_queue_depth", queue=name) == 3
        finally:
            conn.default_channel.queue_purge(name)
            queue(conn.default_channel).delete()
            app.conf.task_default_queue = previous
