"""Retention by plan (``orchestration.services.retention``): what a workspace's plan no longer keeps
is deleted in batches; what it keeps, unfinished runs and other workspaces' rows are not."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.celery import app as celery_app
from orchestration.models import Artifact, Event, FlowRun, FlowRunState, Log, TaskRun
from orchestration.services.retention import run_data_purge_expired
from tests.conftest import bearer, make_tenant

pytestmark = pytest.mark.django_db


def _fill(api_client, tenant, *, runs: int = 2) -> dict:
    """``runs`` completed flow runs, each with a task run, a log, an artifact and an event, and one
    running flow run; returns their ids."""
    bearer(api_client, tenant.member_key)
    p = tenant.prefix
    flow = api_client.post(f"{p}/flows/", {"name": "retained"}, format="json").json()
    made = {"flow_runs": [], "running": None}
    for i in range(runs + 1):
        state = {"type": "RUNNING" if i == runs else "COMPLETED"}
        run = api_client.post(f"{p}/flow_runs/", {"flow_id": flow["id"], "state": state}, format="json")
        assert run.status_code == 201, run.content
        run_id = run.json()["id"]
        if i == runs:
            made["running"] = run_id
            continue
        made["flow_runs"].append(run_id)
        task = {
            "flow_run_id": run_id,
            "task_key": f"t{i}",
            "dynamic_key": "0",
            "state": {"type": "COMPLETED"},
        }
        assert api_client.post(f"{p}/task_runs/", task, format="json").status_code == 201
        log = {
            "name": "x",
            "level": 20,
            "message": "m",
            "timestamp": timezone.now().isoformat(),
            "flow_run_id": run_id,
        }
        assert api_client.post(f"{p}/logs/", [log], format="json").status_code == 201
        artifact = {"key": f"a{i}", "type": "markdown", "data": "d", "flow_run_id": run_id}
        assert api_client.post(f"{p}/artifacts/", artifact, format="json").status_code == 201
        event = {
            "id": str(uuid.uuid4()),
            "occurred": timezone.now().isoformat(),
            "event": "test.happened",
            "resource": {"prefect.resource.id": f"test.{i}"},
        }
        assert api_client.post(f"{p}/events", [event], format="json").status_code == 204
    return made


def _age(tenant, days: float) -> None:
    """Move everything of ``tenant``'s workspace ``days`` into the past."""
    then = timezone.now() - dt.timedelta(days=days)
    ws = tenant.workspace.pk
    FlowRun.objects.for_workspace(ws).exclude(end_time=None).update(end_time=then)
    TaskRun.objects.for_workspace(ws).exclude(end_time=None).update(end_time=then)
    Log.objects.for_workspace(ws).update(timestamp=then)
    Event.objects.for_workspace(ws).update(occurred=then)
    Artifact.objects.for_workspace(ws).update(created=then)


def _counts(tenant) -> dict:
    ws = tenant.workspace.pk
    return {
        "flow_runs": FlowRun.objects.for_workspace(ws).count(),
        "task_runs": TaskRun.objects.for_workspace(ws).count(),
        "logs": Log.objects.for_workspace(ws).count(),
        "events": Event.objects.for_workspace(ws).count(),
        "artifacts": Artifact.objects.for_workspace(ws).count(),
    }


class TestRetention:
    def test_each_plan_keeps_its_days_and_unfinished_runs_stay(self, api_client):
        hobby, team = make_tenant(plan="hobby"), make_tenant(plan="team")
        made = _fill(api_client, hobby)
        _fill(api_client, team)
        before = _counts(hobby)
        assert before["flow_runs"] == 3 and before["task_runs"] == 2 and before["logs"] == 2
        # Ten days old: past Hobby's 7, within Team's 14.
        _age(hobby, 10)
        _age(team, 10)
        team_before = _counts(team)
        deleted = run_data_purge_expired()
        assert deleted["flow_runs"] == 2 and deleted["task_runs"] == 2 and deleted["artifacts"] == 2
        after = _counts(hobby)
        assert after["flow_runs"] == 1 and after["task_runs"] == 0 and after["logs"] == 0
        assert after["events"] == 0 and after["artifacts"] == 0
        # The running flow run (no end) is kept; its states went with the finished ones only.
        assert list(FlowRun.objects.for_workspace(hobby.workspace.pk).values_list("id", flat=True)) == [
            uuid.UUID(made["running"])
        ]
        assert (
            not FlowRunState.objects.for_workspace(hobby.workspace.pk)
            .filter(flow_run_id__in=made["flow_runs"])
            .exists()
        )
        assert _counts(team) == team_before
        # Past Team's 14 days, Team's go too.
        _age(team, 15)
        run_data_purge_expired()
        assert _counts(team)["task_runs"] == 0 and _counts(team)["flow_runs"] == 1

    def test_recent_rows_are_kept(self, api_client):
        tenant = make_tenant(plan="hobby")
        _fill(api_client, tenant)
        before = _counts(tenant)
        _age(tenant, 6)
        assert not any(run_data_purge_expired().values())
        assert _counts(tenant) == before

    def test_deletes_by_id_in_short_batches(self, api_client):
        tenant = make_tenant(plan="hobby")
        _fill(api_client, tenant, runs=5)
        _age(tenant, 30)
        with CaptureQueriesContext(connection) as queries:
            deleted = run_data_purge_expired(batch_size=2)
        assert deleted["flow_runs"] == 5 and deleted["logs"] == 5
        log_deletes = [
            q["sql"]
            for q in queries.captured_queries
            if q["sql"].startswith('DELETE FROM "orchestration_log"')
        ]
        assert len(log_deletes) == 3  # 2 + 2 + 1, each by id
        assert all(" IN (" in sql for sql in log_deletes)

    def test_beat_runs_it_daily(self):
        entry = celery_app.conf.beat_schedule["orchestration-retention"]
        assert entry["task"] == "orchestration.purge_expired_run_data"
        assert entry["task"] in celery_app.tasks
