"""The state change's own SQL on PostgreSQL: the compiled run lock reads what the ORM reads, bounded
by the workspace, and the state row, event and run update go in as one statement; for task runs the
compiled lock, current-state and flow-run reads, and the state row with the run update in one
statement."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from orchestration.models import Event, FlowRun, FlowRunState, TaskRun, TaskRunState
from orchestration.persistence.run_lock import (
    flow_run_with_state,
    locked_task_run,
    task_run_current_state,
)
from orchestration.persistence.run_lock import locked_run as _locked_run
from tenants.scoping import workspace_scope
from tests.orchestration.test_work_pools import make_run, rows

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'", reason="the compiled statements are PostgreSQL's"
    ),
]


def test_the_compiled_lock_reads_what_the_orm_reads(tenant):
    run_id = make_run(tenant, None, state="PENDING")
    with workspace_scope(tenant.workspace.id), transaction.atomic():
        compiled = _locked_run(run_id)
        orm = FlowRun.objects.select_related("state", "flow").get(id=run_id)
    fields = [f.attname for f in FlowRun._meta.concrete_fields]
    assert [getattr(compiled, f) for f in fields] == [getattr(orm, f) for f in fields]
    assert compiled.state.state_details == orm.state.state_details and compiled.state.type == "PENDING"
    assert compiled.flow.name == orm.flow.name
    assert compiled._state.adding is False and compiled._state.db == "default"


def test_the_compiled_lock_is_bounded_by_the_workspace(tenant, two_workspaces):
    run_id = make_run(tenant, None, state="PENDING")
    other, _ = two_workspaces
    with workspace_scope(other.workspace.id), transaction.atomic():
        assert _locked_run(run_id) is None


def test_a_state_change_writes_state_event_and_run_in_one_statement(tenant, dev):
    run_id = make_run(tenant, None, state="PENDING")
    assert dev.get(f"{tenant.prefix}/health").status_code == 200  # the key's use is recorded here
    with CaptureQueriesContext(connection) as ctx:
        response = dev.post(
            f"{tenant.prefix}/flow_runs/{run_id}/set_state",
            {"state": {"type": "RUNNING", "name": "Running"}},
            format="json",
        )
    assert response.status_code == 201 and response.json()["status"] == "ACCEPT"
    writes = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "WITH"))
    ]
    assert len(writes) == 1 and writes[0].startswith("WITH")
    run = rows(FlowRun, tenant).get(id=run_id)
    assert run.state_type == "RUNNING" and run.state.type == "RUNNING"
    assert rows(FlowRunState, tenant).filter(flow_run_id=run_id).count() == 2
    assert (
        Event.objects.unscoped()
        .filter(workspace_id=tenant.workspace.id, resource_id=f"prefect.flow-run.{run_id}")
        .exists()
    )


def _task_run(tenant, dev) -> tuple[str, str]:
    """A PENDING task run of a RUNNING flow run, over the API: (flow run id, task run id)."""
    flow = dev.post(f"{tenant.prefix}/flows/", {"name": "f"}, format="json").json()
    flow_run = dev.post(
        f"{tenant.prefix}/flow_runs/", {"flow_id": flow["id"], "state": {"type": "RUNNING"}}, format="json"
    ).json()
    answer = dev.post(
        f"{tenant.prefix}/task_runs/",
        {"flow_run_id": flow_run["id"], "task_key": "k", "dynamic_key": "0"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    return flow_run["id"], answer.json()["id"]


def test_the_compiled_task_run_reads_are_what_the_orm_reads(tenant, dev):
    flow_run_id, task_run_id = _task_run(tenant, dev)
    with workspace_scope(tenant.workspace.id), transaction.atomic():
        compiled = locked_task_run(task_run_id)
        orm = TaskRun.objects.get(id=task_run_id)
        state = task_run_current_state(compiled)
        flow_run = flow_run_with_state(tenant.workspace.id, flow_run_id)
    fields = [f.attname for f in TaskRun._meta.concrete_fields]
    assert [getattr(compiled, f) for f in fields] == [getattr(orm, f) for f in fields]
    assert state is not None and state.id == orm.state_id and state.type == "PENDING"
    assert flow_run.state.type == "RUNNING" and compiled._state.adding is False


def test_the_compiled_task_run_reads_are_bounded_by_the_workspace(tenant, dev, two_workspaces):
    flow_run_id, task_run_id = _task_run(tenant, dev)
    other, _ = two_workspaces
    with workspace_scope(tenant.workspace.id):
        run = TaskRun.objects.get(id=task_run_id)
    with workspace_scope(other.workspace.id), transaction.atomic():
        assert locked_task_run(task_run_id) is None
        assert flow_run_with_state(other.workspace.id, flow_run_id) is None
    # A state row of another run is not this run's current state.
    with workspace_scope(tenant.workspace.id), transaction.atomic():
        _, second_id = _task_run(tenant, dev)
        second = TaskRun.objects.get(id=second_id)
        second.state_id = run.state_id
        assert task_run_current_state(second) is None


def test_a_task_run_state_change_writes_state_and_run_in_one_statement(tenant, dev):
    _, task_run_id = _task_run(tenant, dev)
    with CaptureQueriesContext(connection) as ctx:
        response = dev.post(
            f"{tenant.prefix}/task_runs/{task_run_id}/set_state",
            {"state": {"type": "RUNNING", "name": "Running"}, "force": False},
            format="json",
        )
    assert response.status_code == 201 and response.json()["status"] == "ACCEPT", response.content
    writes = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "WITH"))
    ]
    assert len(writes) == 1 and writes[0].startswith("WITH")
    run = rows(TaskRun, tenant).get(id=task_run_id)
    assert run.state_type == "RUNNING" and run.run_count == 1
    state = rows(TaskRunState, tenant).get(id=run.state_id)
    assert state.type == "RUNNING" and state.task_run_id == run.id
    assert rows(TaskRunState, tenant).filter(task_run_id=task_run_id).count() == 2
