"""The task-run routes (Prefect's ``api/task_runs.py`` and ``task_run_states.py``): create with
Prefect's idempotency, update, delete, set_state through the task policy, paginate, history,
states; scopes and the cross-workspace 404."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.utils import timezone

from orchestration.events.services import event_parse, events_store
from orchestration.models import TaskRun, TaskRunState, TaskWorker
from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def _create(client, prefix, **body):
    payload = {"task_key": "my-task-abc", "dynamic_key": "0", **body}
    return client.post(f"{prefix}/task_runs/", payload, format="json")


def _set_state(client, prefix, task_run_id, state: dict, force: bool = False):
    return client.post(
        f"{prefix}/task_runs/{task_run_id}/set_state", {"state": state, "force": force}, format="json"
    )


class TestCreate:
    def test_new_then_same_keys_returns_the_same_run(self, tenant, dev, make_flow_run):
        flow_run = make_flow_run(labels={"team": "a"})
        first = _create(dev, tenant.prefix, flow_run_id=flow_run["id"], tags=["t"])
        assert first.status_code == 201, first.content
        run = first.json()
        assert run["flow_run_id"] == flow_run["id"] and run["tags"] == ["t"]
        assert run["state"]["type"] == "PENDING" and run["state_type"] == "PENDING"
        assert run["state"]["state_details"]["task_run_id"] == run["id"]
        assert run["labels"]["prefect.flow-run.id"] == flow_run["id"] and run["labels"]["team"] == "a"
        assert run["name"]
        again = _create(dev, tenant.prefix, flow_run_id=flow_run["id"], name="other")
        assert again.status_code == 200 and again.json()["id"] == run["id"]
        assert TaskRun.objects.for_workspace(tenant.workspace.id).count() == 1
        assert TaskRunState.objects.for_workspace(tenant.workspace.id).count() == 1
        other_key = _create(dev, tenant.prefix, flow_run_id=flow_run["id"], dynamic_key="1")
        assert other_key.status_code == 201 and other_key.json()["id"] != run["id"]

    def test_client_id_and_initial_state(self, tenant, dev):
        task_run_id = str(uuid.uuid4())
        created = _create(
            dev, tenant.prefix, id=task_run_id, state={"type": "SCHEDULED", "name": "Scheduled"}
        )
        assert created.status_code == 201 and created.json()["id"] == task_run_id
        assert created.json()["state"]["state_details"]["scheduled_time"] is not None
        assert _create(dev, tenant.prefix, id=task_run_id, dynamic_key="9").status_code == 200

    def test_deferred_scheduled_run_is_queued(self, tenant, dev):
        state = {"type": "SCHEDULED", "state_details": {"deferred": True}}
        run = _create(dev, tenant.prefix, state=state, dynamic_key="bg").json()
        row = TaskRun.objects.for_workspace(tenant.workspace.id).get(id=run["id"])
        assert row.delivery_queued_at is not None and row.delivery_client_id is None
        plain = _create(dev, tenant.prefix, state={"type": "SCHEDULED"}, dynamic_key="fg").json()
        assert (
            TaskRun.objects.for_workspace(tenant.workspace.id).get(id=plain["id"]).delivery_queued_at is None
        )

    @pytest.mark.parametrize(
        "body",
        [
            {"task_key": "k"},
            {"dynamic_key": "0"},
            {"task_key": "k", "dynamic_key": "0", "state": {"type": "NOPE"}},
            {"task_key": "k", "dynamic_key": "0", "id": "not-a-uuid"},
            {"task_key": "k", "dynamic_key": "0", "empirical_policy": {"retry_delay": list(range(51))}},
            {"task_key": "k", "dynamic_key": "0", "task_inputs": {"x": "not a list"}},
        ],
    )
    def test_bad_bodies_are_422_and_write_nothing(self, tenant, dev, body):
        answer = dev.post(f"{tenant.prefix}/task_runs/", body, format="json")
        assert answer.status_code == 422, answer.content
        assert "exception_detail" in answer.json()
        assert not TaskRun.objects.for_workspace(tenant.workspace.id).exists()

    def test_unknown_flow_run_is_404(self, tenant, dev):
        answer = _create(dev, tenant.prefix, flow_run_id=str(uuid.uuid4()))
        assert answer.status_code == 404
        assert not TaskRun.objects.for_workspace(tenant.workspace.id).exists()


class TestUpdateDelete:
    def test_patch_and_delete(self, tenant, dev):
        run = _create(dev, tenant.prefix).json()
        url = f"{tenant.prefix}/task_runs/{run['id']}"
        assert dev.patch(url, {"name": "renamed"}, format="json").status_code == 204
        assert dev.get(url).json()["name"] == "renamed"
        assert dev.patch(url, {"name": 5}, format="json").status_code == 422
        assert dev.delete(url).status_code == 204
        assert dev.get(url).status_code == 404
        assert dev.delete(url).status_code == 404
        assert dev.patch(url, {"name": "x"}, format="json").status_code == 404
        assert dev.get(f"{tenant.prefix}/task_runs/not-a-uuid").status_code == 404


class TestSetState:
    def test_lifecycle_with_retry(self, tenant, dev, make_flow_run):
        flow_run = make_flow_run("RUNNING")
        run = _create(
            dev, tenant.prefix, flow_run_id=flow_run["id"], empirical_policy={"retries": 1, "retry_delay": 0}
        ).json()
        running = _set_state(dev, tenant.prefix, run["id"], {"type": "RUNNING"})
        assert running.status_code == 201, running.content
        assert running.json()["status"] == "ACCEPT"
        assert running.json()["details"] == {"type": "accept_details"}
        assert running.json()["state"]["state_details"]["flow_run_id"] == flow_run["id"]
        failed = _set_state(dev, tenant.prefix, run["id"], {"type": "FAILED", "message": "boom"})
        assert failed.status_code == 201
        body = failed.json()
        assert body["status"] == "REJECT" and body["details"]["reason"] == "Retrying"
        assert (body["state"]["type"], body["state"]["name"]) == ("SCHEDULED", "AwaitingRetry")
        assert body["state"]["message"] == "boom"
        retrying = _set_state(dev, tenant.prefix, run["id"], {"type": "RUNNING"}).json()
        assert retrying["status"] == "ACCEPT" and retrying["state"]["name"] == "Retrying"
        final = _set_state(dev, tenant.prefix, run["id"], {"type": "FAILED"}).json()
        assert final["status"] == "ACCEPT" and final["state"]["type"] == "FAILED"
        row = TaskRun.objects.for_workspace(tenant.workspace.id).get(id=run["id"])
        assert row.run_count == 2 and row.start_time is not None and row.end_time is not None
        assert row.flow_run_run_count == 1 and row.state_type == "FAILED"
        states = dev.get(f"{tenant.prefix}/task_run_states/", {"task_run_id": run["id"]}).json()
        assert [s["name"] for s in states] == [
            "Pending", "Running", "AwaitingRetry", "Retrying", "Failed"
        ]  # fmt: skip
        one = dev.get(f"{tenant.prefix}/task_run_states/{states[1]['id']}")
        assert one.status_code == 200 and one.json()["type"] == "RUNNING"

    def test_running_needs_a_running_flow_run(self, tenant, dev, make_flow_run):
        flow_run = make_flow_run("PENDING")
        run = _create(dev, tenant.prefix, flow_run_id=flow_run["id"]).json()
        aborted = _set_state(dev, tenant.prefix, run["id"], {"type": "RUNNING"})
        assert aborted.status_code == 200
        assert aborted.json()["status"] == "ABORT"
        assert aborted.json()["state"]["type"] == "PENDING"
        assert TaskRun.objects.for_workspace(tenant.workspace.id).get(id=run["id"]).state_type == "PENDING"

    def test_terminal_states_are_protected_unless_forced(self, tenant, dev):
        run = _create(dev, tenant.prefix).json()
        _set_state(dev, tenant.prefix, run["id"], {"type": "RUNNING"})
        persisted = {"type": "COMPLETED", "data": {"storage_key": "/x", "type": "result"}}
        assert _set_state(dev, tenant.prefix, run["id"], persisted).json()["status"] == "ACCEPT"
        crashed = _set_state(dev, tenant.prefix, run["id"], {"type": "CRASHED"}).json()
        assert crashed["status"] == "ABORT" and crashed["state"]["type"] == "COMPLETED"
        rerun = _set_state(dev, tenant.prefix, run["id"], {"type": "RUNNING"}).json()
        assert rerun["status"] == "REJECT" and rerun["details"]["reason"] == "This run is already completed."
        forced = _set_state(dev, tenant.prefix, run["id"], {"type": "RUNNING"}, force=True).json()
        assert forced["status"] == "ACCEPT" and forced["state"]["type"] == "RUNNING"

    def test_future_scheduled_time_waits(self, tenant, dev):
        later = (timezone.now() + dt.timedelta(minutes=5)).isoformat()
        run = _create(
            dev, tenant.prefix, state={"type": "SCHEDULED", "state_details": {"scheduled_time": later}}
        ).json()
        wait = _set_state(dev, tenant.prefix, run["id"], {"type": "RUNNING"})
        assert wait.status_code == 200
        body = wait.json()
        assert body["status"] == "WAIT" and 290 <= body["details"]["delay_seconds"] <= 300

    def test_cached_state_is_reused(self, tenant, dev):
        first = _create(dev, tenant.prefix, dynamic_key="a").json()
        _set_state(dev, tenant.prefix, first["id"], {"type": "RUNNING"})
        done = {"type": "COMPLETED", "data": {"type": "result"}, "state_details": {"cache_key": "ck"}}
        _set_state(dev, tenant.prefix, first["id"], done)
        second = _create(dev, tenant.prefix, dynamic_key="b").json()
        cached = _set_state(
            dev, tenant.prefix, second["id"], {"type": "RUNNING", "state_details": {"cache_key": "ck"}}
        ).json()
        assert cached["status"] == "REJECT" and cached["state"]["name"] == "Cached"
        assert cached["state"]["type"] == "COMPLETED"

    def test_bad_proposals(self, tenant, dev):
        run = _create(dev, tenant.prefix).json()
        url = f"{tenant.prefix}/task_runs/{run['id']}/set_state"
        assert dev.post(url, {"state": {"type": "BOGUS"}}, format="json").status_code == 422
        assert dev.post(url, {}, format="json").status_code == 422
        assert (
            dev.post(
                f"{tenant.prefix}/task_runs/{uuid.uuid4()}/set_state",
                {"state": {"type": "RUNNING"}},
                format="json",
            ).status_code
            == 404
        )
        assert TaskRunState.objects.for_workspace(tenant.workspace.id).count() == 1


class TestSubflowParentTask:
    def test_flow_run_states_are_mirrored_on_the_parent_task_run(self, tenant, dev, make_flow_run):
        parent = make_flow_run("RUNNING")
        task_run = _create(dev, tenant.prefix, flow_run_id=parent["id"], task_key="child-flow").json()
        child = make_flow_run("PENDING", parent_task_run_id=task_run["id"])
        assert child["state"]["state_details"]["task_run_id"] == task_run["id"]
        answer = dev.post(
            f"{tenant.prefix}/flow_runs/{child['id']}/set_state",
            {"state": {"type": "RUNNING"}},
            format="json",
        )
        assert answer.json()["status"] == "ACCEPT"
        mirrored = dev.get(f"{tenant.prefix}/task_runs/{task_run['id']}").json()
        assert mirrored["state_type"] == "RUNNING"
        assert mirrored["state"]["state_details"]["child_flow_run_id"] == child["id"]
        assert mirrored["state"]["state_details"]["task_run_id"] == task_run["id"]
        dev.post(
            f"{tenant.prefix}/flow_runs/{child['id']}/set_state",
            {"state": {"type": "FAILED", "message": "no"}},
            format="json",
        )
        failed = dev.get(f"{tenant.prefix}/task_runs/{task_run['id']}").json()
        assert failed["state_type"] == "FAILED" and failed["state"]["message"] == "no"


class TestEventsAgree:
    def test_a_run_created_over_http_then_reported_by_events_is_one_row(self, tenant, dev, make_flow_run):
        flow_run = make_flow_run("RUNNING")
        run = _create(dev, tenant.prefix, flow_run_id=flow_run["id"]).json()
        occurred = timezone.now().isoformat()  # after the POST, before the set_state below
        event = {
            "id": str(uuid.uuid4()),
            "occurred": occurred,
            "event": "prefect.task-run.Running",
            "resource": {
                "prefect.resource.id": f"prefect.task-run.{run['id']}",
                "prefect.resource.name": run["name"],
                "prefect.orchestration": "client",
            },
            "related": [
                {
                    "prefect.resource.id": f"prefect.flow-run.{flow_run['id']}",
                    "prefect.resource.role": "flow-run",
                }
            ],
            "payload": {
                "task_run": {
                    "name": run["name"],
                    "task_key": "my-task-abc",
                    "dynamic_key": "0",
                    "run_count": 1,
                },
                "validated_state": {"type": "RUNNING", "name": "Running"},
            },
        }
        events_store(workspace_id=tenant.workspace.id, events=[event_parse(json.dumps(event))])
        rows = TaskRun.objects.for_workspace(tenant.workspace.id)
        assert rows.count() == 1
        row = rows.get()
        assert str(row.id) == run["id"] and row.state_type == "RUNNING" and str(row.state_id) == event["id"]
        assert TaskRunState.objects.for_workspace(tenant.workspace.id).count() == 2
        # The HTTP route then governs from the state the events left.
        done = _set_state(dev, tenant.prefix, run["id"], {"type": "COMPLETED"}).json()
        assert (
            done["status"] == "ACCEPT"
            and TaskRun.objects.for_workspace(tenant.workspace.id).get().state_type == "COMPLETED"
        )


class TestReads:
    def test_paginate_and_count(self, tenant, dev):
        for i in range(5):
            _create(dev, tenant.prefix, dynamic_key=str(i), tags=["even"] if i % 2 == 0 else [])
        page = dev.post(f"{tenant.prefix}/task_runs/paginate", {"limit": 2, "page": 2}, format="json").json()
        assert (page["count"], page["limit"], page["pages"], page["page"]) == (5, 2, 3, 2)
        assert len(page["results"]) == 2 and page["results"][0]["state"]["type"] == "PENDING"
        tagged = dev.post(
            f"{tenant.prefix}/task_runs/paginate", {"task_runs": {"tags": {"all_": ["even"]}}}, format="json"
        ).json()
        assert tagged["count"] == 3 and tagged["pages"] == 1
        assert dev.post(f"{tenant.prefix}/task_runs/paginate", {"page": 0}, format="json").status_code == 422
        assert dev.post(f"{tenant.prefix}/task_runs/count", {}, format="json").json() == 5

    def test_history(self, tenant, dev):
        run = _create(dev, tenant.prefix).json()
        expected = dt.datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00"))
        start = expected - dt.timedelta(seconds=30)
        body = {
            "history_start": start.isoformat(),
            "history_end": (start + dt.timedelta(seconds=120)).isoformat(),
            "history_interval_seconds": 60,
        }
        history = dev.post(f"{tenant.prefix}/task_runs/history", body, format="json").json()
        assert len(history) == 2
        assert (
            history[0]["states"][0]["state_type"] == "PENDING" and history[0]["states"][0]["count_runs"] == 1
        )
        assert history[1]["states"] == []
        bad = dev.post(
            f"{tenant.prefix}/task_runs/history", {**body, "history_interval_seconds": 0.5}, format="json"
        )
        assert bad.status_code == 422
        assert dev.post(f"{tenant.prefix}/task_runs/history", {}, format="json").status_code == 422

    def test_states_query_needs_a_task_run_id(self, tenant, dev):
        assert dev.get(f"{tenant.prefix}/task_run_states/").status_code == 422
        assert dev.get(f"{tenant.prefix}/task_run_states/", {"task_run_id": "x"}).status_code == 422
        assert dev.get(f"{tenant.prefix}/task_run_states/{uuid.uuid4()}").status_code == 404

    def test_task_workers_filter(self, tenant, dev):
        assert dev.post(f"{tenant.prefix}/task_workers/filter", {}, format="json").json() == []
        TaskWorker.objects.for_workspace(tenant.workspace.id).create(
            workspace_id=tenant.workspace.id, identifier="w1", task_keys=["a", "b"], last_seen=timezone.now()
        )
        TaskWorker.objects.for_workspace(tenant.workspace.id).create(
            workspace_id=tenant.workspace.id,
            identifier="stale",
            task_keys=["a"],
            last_seen=timezone.now() - dt.timedelta(hours=1),
        )
        everyone = dev.post(f"{tenant.prefix}/task_workers/filter", None, format="json").json()
        assert [w["identifier"] for w in everyone] == ["w1"] and everyone[0]["task_keys"] == ["a", "b"]
        by_key = {"task_worker_filter": {"task_keys": ["z"]}}
        assert dev.post(f"{tenant.prefix}/task_workers/filter", by_key, format="json").json() == []
        bad = {"task_worker_filter": {"task_keys": "a"}}
        assert dev.post(f"{tenant.prefix}/task_workers/filter", bad, format="json").status_code == 422


class TestAccess:
    def test_scopes(self, tenant, dev, role_key):
        run = _create(dev, tenant.prefix).json()
        viewer, worker = role_key("viewer"), role_key("worker")
        assert _create(viewer, tenant.prefix, dynamic_key="v").status_code == 403
        assert _set_state(viewer, tenant.prefix, run["id"], {"type": "RUNNING"}).status_code == 403
        assert (
            viewer.patch(f"{tenant.prefix}/task_runs/{run['id']}", {"name": "x"}, format="json").status_code
            == 403
        )
        assert viewer.delete(f"{tenant.prefix}/task_runs/{run['id']}").status_code == 403
        assert viewer.get(f"{tenant.prefix}/task_runs/{run['id']}").status_code == 200
        assert viewer.post(f"{tenant.prefix}/task_runs/paginate", {}, format="json").status_code == 200
        assert viewer.get(f"{tenant.prefix}/task_run_states/", {"task_run_id": run["id"]}).status_code == 200
        assert viewer.post(f"{tenant.prefix}/task_workers/filter", {}, format="json").status_code == 200
        assert _create(worker, tenant.prefix, dynamic_key="w").status_code == 201
        assert worker.delete(f"{tenant.prefix}/task_runs/{run['id']}").status_code == 403
        assert (
            TaskRunState.objects.for_workspace(tenant.workspace.id).filter(task_run_id=run["id"]).count() == 1
        )

    def test_another_workspaces_task_run_is_404(self, two_workspaces, api_client, dev_b):
        a, b = two_workspaces
        dev_a = bearer(api_client, a.service_key)
        run = _create(dev_a, a.prefix).json()
        url = f"{b.prefix}/task_runs/{run['id']}"
        assert dev_b.get(url).status_code == 404
        assert dev_b.patch(url, {"name": "x"}, format="json").status_code == 404
        assert dev_b.delete(url).status_code == 404
        assert _set_state(dev_b, b.prefix, run["id"], {"type": "RUNNING"}).status_code == 404
        state_id = run["state"]["id"]
        assert dev_b.get(f"{b.prefix}/task_run_states/{state_id}").status_code == 404
        assert dev_b.get(f"{b.prefix}/task_run_states/", {"task_run_id": run["id"]}).json() == []
        assert dev_b.post(f"{b.prefix}/task_runs/filter", {}, format="json").json() == []
        # The id cannot cross: creating it in B is a conflict, and B gets no row.
        assert _create(dev_b, b.prefix, id=run["id"]).status_code == 409
        assert not TaskRun.objects.for_workspace(b.workspace.id).exists()
        assert TaskRun.objects.for_workspace(a.workspace.id).get().state_type == "PENDING"
        # A's key on B's path is B's "not found".
        assert dev_a.get(url).status_code == 404
