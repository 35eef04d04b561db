"""Task runs over HTTP and from the client's events are one thing: a run created by
``POST task_runs/`` and moved by ``set_state`` (the task policy) and the run its events describe are
the same row, and whichever arrives first, the newest state (by its timestamp) is the run's; the
state history keeps every state, in both orders."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.utils import timezone

from orchestration.events.services import event_parse, events_store
from orchestration.models import TaskRun, TaskRunState
from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def _create(client, prefix, flow_run_id, **body):
    payload = {"task_key": "my-task-abc", "dynamic_key": "0", "flow_run_id": flow_run_id, **body}
    answer = client.post(f"{prefix}/task_runs/", payload, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def _set_state(client, prefix, task_run_id, state_type: str, force: bool = False) -> dict:
    answer = client.post(
        f"{prefix}/task_runs/{task_run_id}/set_state",
        {"state": {"type": state_type}, "force": force},
        format="json",
    )
    assert answer.status_code in (200, 201), answer.content
    return answer.json()


def _event(
    *, task_run_id, flow_run_id, state_type: str, name: str, occurred: dt.datetime, **task_run
) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "occurred": occurred.isoformat(),
        "event": f"prefect.task-run.{name}",
        "resource": {
            "prefect.resource.id": f"prefect.task-run.{task_run_id}",
            "prefect.resource.name": "my-task",
            "prefect.orchestration": "client",
        },
        "related": [
            {"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}
        ],
        "payload": {
            "task_run": {"name": "my-task", "task_key": "my-task-abc", "dynamic_key": "0", **task_run},
            "validated_state": {"type": state_type, "name": name},
        },
    }


def _store(tenant, *events: dict) -> None:
    events_store(workspace_id=tenant.workspace.id, events=[event_parse(json.dumps(e)) for e in events])


def _run(tenant) -> TaskRun:
    return TaskRun.objects.for_workspace(tenant.workspace.id).get()


def _history(tenant) -> list[tuple[str, str]]:
    rows = TaskRunState.objects.for_workspace(tenant.workspace.id).order_by("timestamp")
    return [(row.type, row.name) for row in rows]


class TestHttpFirst:
    def test_an_older_event_arriving_later_does_not_move_the_run(self, tenant, dev, make_flow_run):
        flow_run = make_flow_run("RUNNING")
        run = _create(dev, tenant.prefix, flow_run["id"])
        assert _set_state(dev, tenant.prefix, run["id"], "RUNNING")["status"] == "ACCEPT"
        running = _run(tenant)
        old = _event(
            task_run_id=run["id"],
            flow_run_id=flow_run["id"],
            state_type="PENDING",
            name="Pending",
            occurred=running.state_timestamp - dt.timedelta(seconds=5),
        )
        _store(tenant, old)
        after = _run(tenant)
        assert (after.state_type, after.state_id, after.state_timestamp) == (
            "RUNNING",
            running.state_id,
            running.state_timestamp,
        )
        # Both are in the history: the HTTP states and the late event's.
        assert _history(tenant) == [("PENDING", "Pending"), ("PENDING", "Pending"), ("RUNNING", "Running")]
        assert TaskRunState.objects.for_workspace(tenant.workspace.id).filter(id=old["id"]).exists()

    def test_a_newer_event_moves_the_run(self, tenant, dev, make_flow_run):
        flow_run = make_flow_run("RUNNING")
        run = _create(dev, tenant.prefix, flow_run["id"])
        _set_state(dev, tenant.prefix, run["id"], "RUNNING")
        newer = _event(
            task_run_id=run["id"],
            flow_run_id=flow_run["id"],
            state_type="COMPLETED",
            name="Completed",
            occurred=timezone.now() + dt.timedelta(seconds=1),
            run_count=1,
        )
        _store(tenant, newer)
        after = _run(tenant)
        assert (after.state_type, str(after.state_id), after.run_count) == ("COMPLETED", newer["id"], 1)
        assert [t for t, _ in _history(tenant)] == ["PENDING", "RUNNING", "COMPLETED"]


class TestEventsFirst:
    def test_an_older_http_proposal_does_not_move_the_run(self, tenant, dev, make_flow_run):
        """The event's ``occurred`` (the client's clock) is later than the server's now: the
        proposal is governed and kept in the history, the run stays in the event's state."""
        flow_run = make_flow_run("RUNNING")
        run = _create(dev, tenant.prefix, flow_run["id"])
        future = timezone.now() + dt.timedelta(minutes=5)
        completed = _event(
            task_run_id=run["id"],
            flow_run_id=flow_run["id"],
            state_type="COMPLETED",
            name="Completed",
            occurred=future,
            run_count=1,
        )
        _store(tenant, completed)
        answer = _set_state(dev, tenant.prefix, run["id"], "FAILED", force=True)
        assert answer["status"] == "ACCEPT" and answer["state"]["type"] == "FAILED"
        after = _run(tenant)
        assert (after.state_type, str(after.state_id), after.state_timestamp) == (
            "COMPLETED",
            completed["id"],
            future,
        )
        assert [t for t, _ in _history(tenant)] == ["PENDING", "FAILED", "COMPLETED"]
        # The read route agrees with the row.
        read = dev.get(f"{tenant.prefix}/task_runs/{run['id']}").json()
        assert read["state"]["id"] == completed["id"] and read["state_type"] == "COMPLETED"

    def test_a_newer_http_proposal_moves_the_run(self, tenant, dev, make_flow_run):
        flow_run = make_flow_run("RUNNING")
        run = _create(dev, tenant.prefix, flow_run["id"])
        running = _event(
            task_run_id=run["id"],
            flow_run_id=flow_run["id"],
            state_type="RUNNING",
            name="Running",
            occurred=timezone.now(),  # after the POST's Pending, before the proposal
            run_count=1,
        )
        _store(tenant, running)
        assert _run(tenant).state_type == "RUNNING"
        answer = _set_state(dev, tenant.prefix, run["id"], "COMPLETED")
        assert answer["status"] == "ACCEPT"
        after = _run(tenant)
        assert after.state_type == "COMPLETED" and str(after.state_id) == answer["state"]["id"]
        assert [t for t, _ in _history(tenant)] == ["PENDING", "RUNNING", "COMPLETED"]


class TestOneRow:
    def test_events_under_another_id_with_the_same_key_land_on_the_http_run(self, tenant, dev, make_flow_run):
        """Prefect's idempotency key (flow run, task key, dynamic key) names the run too: the
        events of a run the client knows under another id are recorded on the HTTP-created row."""
        flow_run = make_flow_run("RUNNING")
        run = _create(dev, tenant.prefix, flow_run["id"])
        other_id = uuid.uuid4()
        now = timezone.now()
        events = [
            _event(
                task_run_id=other_id,
                flow_run_id=flow_run["id"],
                state_type=state_type,
                name=name,
                occurred=now + dt.timedelta(seconds=offset),
                run_count=1,
            )
            for offset, (state_type, name) in enumerate(
                [("RUNNING", "Running"), ("COMPLETED", "Completed")], 1
            )
        ]
        _store(tenant, events[0])
        _store(tenant, events[1])
        row = _run(tenant)  # still one row
        assert (
            str(row.id) == run["id"]
            and row.state_type == "COMPLETED"
            and str(row.state_id) == events[1]["id"]
        )
        states = TaskRunState.objects.for_workspace(tenant.workspace.id).filter(task_run_id=run["id"])
        assert states.count() == 3
        completed = states.get(id=events[1]["id"])
        assert completed.state_details["task_run_id"] == run["id"]
        assert not TaskRun.objects.unscoped().filter(id=other_id).exists()

    def test_two_new_ids_with_one_key_in_one_batch_are_one_row(self, tenant, make_flow_run):
        flow_run = make_flow_run("RUNNING")
        now = timezone.now()
        first = _event(
            task_run_id=uuid.uuid4(),
            flow_run_id=flow_run["id"],
            state_type="RUNNING",
            name="Running",
            occurred=now,
        )
        second = _event(
            task_run_id=uuid.uuid4(),
            flow_run_id=flow_run["id"],
            state_type="COMPLETED",
            name="Completed",
            occurred=now + dt.timedelta(seconds=1),
        )
        _store(tenant, first, second)
        row = _run(tenant)
        assert str(row.id) == first["resource"]["prefect.resource.id"].removeprefix("prefect.task-run.")
        assert row.state_type == "COMPLETED"
        assert TaskRunState.objects.for_workspace(tenant.workspace.id).filter(task_run=row).count() == 2

    def test_the_key_never_reaches_another_workspace(self, two_workspaces, api_client):
        """A run of workspace A with the same key is not B's: B's events make B's own row."""
        a, b = two_workspaces
        dev_a = bearer(api_client, a.service_key)
        flow = dev_a.post(f"{a.prefix}/flows/", {"name": "f"}, format="json").json()
        flow_run = dev_a.post(
            f"{a.prefix}/flow_runs/", {"flow_id": flow["id"], "state": {"type": "RUNNING"}}, format="json"
        ).json()
        run_a = _create(dev_a, a.prefix, flow_run["id"])
        event = _event(
            task_run_id=uuid.uuid4(),
            flow_run_id=flow_run["id"],
            state_type="COMPLETED",
            name="Completed",
            occurred=timezone.now(),
        )
        events_store(workspace_id=b.workspace.id, events=[event_parse(json.dumps(event))])
        assert TaskRun.objects.for_workspace(a.workspace.id).get().state_type == "PENDING"
        assert TaskRun.objects.for_workspace(a.workspace.id).get().id == uuid.UUID(run_a["id"])
        assert TaskRun.objects.for_workspace(b.workspace.id).get().state_type == "COMPLETED"
