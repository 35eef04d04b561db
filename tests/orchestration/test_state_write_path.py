"""The state change's own SQL on PostgreSQL: the compiled run lock reads what the ORM reads, bounded
by the workspace, and the state row, event and run update go in as one statement."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from orchestration.models import Event, FlowRun, FlowRunState
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
