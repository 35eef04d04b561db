"""Task runs built from the client's task-run events (REPORT.md §3.2), from captured frames."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import pytest

from orchestration.events.services import events_ingest
from orchestration.models import TaskRun, TaskRunState
from tests.orchestration.events.conftest import captured, events_path, open_cloud, open_prefect, run

pytestmark = pytest.mark.django_db(transaction=True)

RETRY_TASK_RUN_ID = uuid.UUID("01a211d3-f5a6-79b5-a529-573cb793d068")
RETRY_FLOW_RUN_ID = uuid.UUID("5b7ab16d-3342-4dcd-bcb6-89397780f7b4")


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _states(workspace, run_id):
    return list(
        TaskRunState.objects.for_workspace(workspace.pk).filter(task_run_id=run_id).order_by("timestamp")
    )


def _assert_retry_task_run(workspace, events):
    task_events = [e for e in events if e["event"].startswith("prefect.task-run.")]
    run_ = TaskRun.objects.for_workspace(workspace.pk).get(pk=RETRY_TASK_RUN_ID)
    completed = task_events[-1]
    assert completed["event"] == "prefect.task-run.Completed"
    assert (run_.state_type, run_.state_name) == ("COMPLETED", "Completed")
    assert run_.state_id == uuid.UUID(completed["id"])
    assert run_.state_timestamp == _ts(completed["occurred"])
    assert run_.flow_run_id == RETRY_FLOW_RUN_ID
    assert run_.name == "flaky-025"
    assert run_.task_key == "flaky-5f50b981"
    assert run_.dynamic_key == "02584f03-2952-4a40-b19d-f300661edd3a"
    assert run_.run_count == 2
    assert run_.flow_run_run_count == 1
    assert run_.start_time == _ts("2026-11-25T08:30:33.383813Z")
    assert run_.end_time == _ts("2026-11-25T08:30:33.386856Z")
    assert run_.expected_start_time == _ts("2026-11-25T08:30:33.382736Z")
    assert run_.total_run_time == pytest.approx(0.003043)
    assert run_.empirical_policy["retries"] == 1
    assert run_.tags == [] and run_.labels == {} and run_.task_inputs == {}

    states = _states(workspace, RETRY_TASK_RUN_ID)
    # The event id is the state id; every state is kept, in order.
    assert [str(s.id) for s in states] == [e["id"] for e in task_events]
    assert [(s.type, s.name) for s in states] == [
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("RUNNING", "Retrying"),
        ("COMPLETED", "Completed"),
    ]
    assert [s.timestamp for s in states] == [_ts(e["occurred"]) for e in task_events]
    assert states[0].state_details["task_run_id"] == str(RETRY_TASK_RUN_ID)
    assert states[0].state_details["flow_run_id"] == str(RETRY_FLOW_RUN_ID)


def test_a_retried_task_is_recorded_from_its_events_over_the_socket(tenant):
    events = captured("task_retry")

    async def scenario():
        ws = await open_prefect(events_path(tenant, "in"), tenant.service_key)
        for event in events:
            await ws.send_json_to(event)
        await ws.disconnect()

    run(scenario)
    _assert_retry_task_run(tenant.workspace, events)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_out_of_order_arrival_ends_in_the_newest_state(tenant, seed):
    events = captured("task_retry")
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)

    async def scenario():
        ws = await open_cloud(events_path(tenant, "in"), tenant.service_key)
        for event in shuffled:
            await ws.send_json_to(event)
        await ws.disconnect()

    run(scenario)
    _assert_retry_task_run(tenant.workspace, events)


def test_late_events_in_later_batches_never_roll_a_run_back(tenant):
    events = captured("task_retry")
    task_events = events[1:]
    completed, earlier = task_events[-1], task_events[:-1]
    assert events_ingest(workspace_id=tenant.workspace.pk, events=[completed]) == 1
    run_ = TaskRun.objects.for_workspace(tenant.workspace.pk).get()
    assert run_.state_type == "COMPLETED" and run_.end_time is not None
    for event in reversed(earlier):  # each a batch of its own, oldest last
        assert events_ingest(workspace_id=tenant.workspace.pk, events=[event]) == 1
    _assert_retry_task_run(tenant.workspace, events)


def test_a_run_only_gets_the_fields_its_newest_event_carries(tenant):
    """Pending carries no start_time; Running does; a Running that arrives first is not undone by a
    Pending that arrives later, and a row first made from Pending gets start_time from Running."""
    events = captured("seq")
    pending, running, completed = events[1], events[2], events[3]
    assert "start_time" not in pending["payload"]["task_run"]
    run_id = uuid.UUID(pending["resource"]["prefect.resource.id"].removeprefix("prefect.task-run."))

    events_ingest(workspace_id=tenant.workspace.pk, events=[pending])
    run_ = TaskRun.objects.for_workspace(tenant.workspace.pk).get(pk=run_id)
    assert (run_.state_type, run_.start_time, run_.run_count) == ("PENDING", None, 0)

    events_ingest(workspace_id=tenant.workspace.pk, events=[running])
    run_.refresh_from_db()
    assert run_.state_type == "RUNNING" and run_.start_time is not None and run_.run_count == 1

    events_ingest(workspace_id=tenant.workspace.pk, events=[completed, pending])
    run_.refresh_from_db()
    assert run_.state_type == "COMPLETED" and run_.end_time is not None
    assert len(_states(tenant.workspace, run_id)) == 3


def test_sequential_tasks_each_get_a_run(tenant):
    events = captured("seq")
    events_ingest(workspace_id=tenant.workspace.pk, events=events)
    runs = TaskRun.objects.for_workspace(tenant.workspace.pk).order_by("expected_start_time")
    assert [r.state_type for r in runs] == ["COMPLETED", "COMPLETED"]
    assert all(r.flow_run_id == runs[0].flow_run_id for r in runs)
    assert TaskRunState.objects.for_workspace(tenant.workspace.pk).count() == 6


def test_only_client_orchestrated_task_run_events_build_runs(tenant):
    events = captured("task_retry")
    for event in events:
        event["resource"].pop("prefect.orchestration", None)
    assert events_ingest(workspace_id=tenant.workspace.pk, events=events) == len(events)
    assert TaskRun.objects.for_workspace(tenant.workspace.pk).count() == 0


def test_unreadable_task_run_events_are_stored_but_build_nothing(tenant):
    events = captured("task_retry")
    broken = json.loads(json.dumps(events[1]))
    broken["id"] = str(uuid.uuid4())
    broken["payload"]["validated_state"]["type"] = "NOT_A_STATE"
    bad_id = json.loads(json.dumps(events[2]))
    bad_id["id"] = str(uuid.uuid4())
    bad_id["resource"]["prefect.resource.id"] = "prefect.task-run.not-a-uuid"
    assert events_ingest(workspace_id=tenant.workspace.pk, events=[broken, bad_id]) == 2
    assert TaskRun.objects.for_workspace(tenant.workspace.pk).count() == 0


def test_a_task_run_id_of_another_workspace_is_never_touched(two_workspaces):
    a, b = two_workspaces
    events = captured("task_retry")
    events_ingest(workspace_id=a.workspace.pk, events=events[:3])  # A's run is Running
    before = TaskRun.objects.unscoped().values().get(pk=RETRY_TASK_RUN_ID)

    # B sends events for the same task run id (fresh event ids, newer states).
    for event in events:
        event["id"] = str(uuid.uuid4())
    assert events_ingest(workspace_id=b.workspace.pk, events=events) == len(events)

    assert TaskRun.objects.unscoped().values().get(pk=RETRY_TASK_RUN_ID) == before
    assert TaskRun.objects.for_workspace(b.workspace.pk).count() == 0
    assert TaskRunState.objects.for_workspace(b.workspace.pk).count() == 0
    assert TaskRunState.objects.for_workspace(a.workspace.pk).count() == 2
