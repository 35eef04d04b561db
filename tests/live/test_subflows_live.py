"""Subflows with the real client: the parent task run a subflow call creates over HTTP
(``POST task_runs/``), its link to the child flow run (``parent_task_run_id``) and its states
mirrored from the child's (``UpdateSubflowParentTask``), as against Prefect's own server."""

from __future__ import annotations

import uuid

import httpx
import pytest

from orchestration.models import Flow, FlowRun, TaskRun, TaskRunState
from tests.live.conftest import make_live_tenant, wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _ok(run) -> dict:
    result = run.result
    assert run.returncode == 0 and result is not None and "error" not in result, run.describe()
    return result


def _runs_of(workspace, flow_name: str) -> list[FlowRun]:
    return list(FlowRun.objects.for_workspace(workspace.id).filter(flow__name=flow_name))


def _parent_task(workspace, child: FlowRun) -> TaskRun:
    assert child.parent_task_run_id is not None, child
    return TaskRun.objects.for_workspace(workspace.id).get(id=child.parent_task_run_id)


def _state_types(workspace, task_run: TaskRun) -> list[str]:
    return list(
        TaskRunState.objects.for_workspace(workspace.id)
        .filter(task_run=task_run)
        .order_by("timestamp")
        .values_list("type", flat=True)
    )


def test_flow_calling_a_subflow_calling_a_subflow(asgi_server, live_tenant, run_prefect):
    run = run_prefect("subflow_nested.py", env={"SUBFLOW_X": "1"})
    result = _ok(run)
    assert result["type"] == "COMPLETED" and result["value"] == 30, run.describe()
    assert result["inner_state"] == "COMPLETED", run.describe()
    workspace = live_tenant.workspace

    [outer] = _runs_of(workspace, "live-sub-outer")
    [middle] = _runs_of(workspace, "live-sub-middle")
    [inner] = _runs_of(workspace, "live-sub-inner")
    assert outer.parent_task_run_id is None
    for child in (middle, inner):
        assert child.state_type == "COMPLETED", child

    # Each subflow is tracked by a task run of its parent flow run, created over HTTP (201).
    middle_task, inner_task = _parent_task(workspace, middle), _parent_task(workspace, inner)
    assert middle_task.flow_run_id == outer.id and inner_task.flow_run_id == middle.id
    assert middle_task.labels["prefect.flow-run.id"] == str(outer.id)
    creates = [ex for ex in asgi_server.exchanges if ex.method == "POST" and ex.path.endswith("/task_runs/")]
    assert len(creates) == 2 and all(ex.status == 201 for ex in creates), run.trail

    # The parent task runs follow their subflows (Pending → Running → Completed), each state
    # naming the child flow run, as Prefect's server mirrors them.
    for task_run, child in ((middle_task, middle), (inner_task, inner)):
        task_run = wait_for(
            lambda task_run=task_run: TaskRun.objects.for_workspace(workspace.id).get(id=task_run.id),
            lambda tr: tr.state_type == "COMPLETED",
        )
        assert task_run.state_type == "COMPLETED" and task_run.state_name == "Completed", task_run
        types = _state_types(workspace, task_run)
        assert types[-3:] == ["PENDING", "RUNNING", "COMPLETED"], types
        last = TaskRunState.objects.for_workspace(workspace.id).get(id=task_run.state_id)
        assert last.state_details["child_flow_run_id"] == str(child.id)
        assert last.state_details["task_run_id"] == str(task_run.id)
        assert task_run.start_time is not None and task_run.end_time is not None

    # The ordinary task of the outer flow is still recorded from events: one row per task run.
    task_runs = TaskRun.objects.for_workspace(workspace.id).filter(flow_run_id=outer.id)
    assert task_runs.count() == 2, list(task_runs.values("name", "task_key"))


def test_a_failing_subflow_fails_its_parent(live_tenant, run_prefect):
    run = run_prefect("subflow_fail.py")
    result = run.result
    assert result is not None and result.get("type") == "FAILED", run.describe()
    workspace = live_tenant.workspace
    [parent] = _runs_of(workspace, "live-sub-failing-parent")
    [child] = _runs_of(workspace, "live-sub-failing-child")
    assert parent.state_type == "FAILED" and child.state_type == "FAILED"
    task_run = _parent_task(workspace, child)
    assert task_run.flow_run_id == parent.id
    assert task_run.state_type == "FAILED", _state_types(workspace, task_run)


def test_viewer_key_cannot_start_subflows(asgi_server, live_tenant, run_prefect):
    run = run_prefect("subflow_nested.py", key=live_tenant.viewer_key)
    result = run.result
    assert run.returncode != 0 and result is not None and "error" in result, run.describe()
    assert FlowRun.objects.for_workspace(live_tenant.workspace.id).count() == 0
    assert TaskRun.objects.for_workspace(live_tenant.workspace.id).count() == 0


def test_a_task_run_of_another_workspace_is_404_there(asgi_server, live_tenant, run_prefect):
    run = run_prefect("subflow_nested.py")
    _ok(run)
    ours = TaskRun.objects.for_workspace(live_tenant.workspace.id).exclude(dynamic_key__startswith="double")
    task_run = ours.filter(flow_run_id__isnull=False).first()
    other = make_live_tenant(asgi_server.url)
    headers = {"Authorization": f"Bearer {other.developer_key}"}
    base = f"{other.api_url}/task_runs/{task_run.id}"
    assert httpx.get(base, headers=headers).status_code == 404
    assert httpx.patch(base, headers=headers, json={"name": "x"}).status_code == 404
    assert httpx.delete(base, headers=headers).status_code == 404
    assert (
        httpx.post(f"{base}/set_state", headers=headers, json={"state": {"type": "FAILED"}}).status_code
        == 404
    )
    states = httpx.get(
        f"{other.api_url}/task_run_states/", params={"task_run_id": str(task_run.id)}, headers=headers
    )
    assert states.status_code == 200 and states.json() == []
    # The same id cannot be created in the other workspace, and nothing there changes.
    taken = httpx.post(
        f"{other.api_url}/task_runs/",
        headers=headers,
        json={"id": str(task_run.id), "task_key": "k", "dynamic_key": "0"},
    )
    assert taken.status_code == 409, taken.text
    assert TaskRun.objects.for_workspace(other.workspace.id).count() == 0
    assert (
        TaskRun.objects.for_workspace(live_tenant.workspace.id).get(id=task_run.id).state_type == "COMPLETED"
    )
    assert Flow.objects.for_workspace(other.workspace.id).count() == 0
    assert uuid.UUID(str(task_run.id))
