"""Prefect's ``FailExpiredPauses``: a PAUSED run past its ``pause_timeout`` is FAILED by the
periodic sweep (forced, "The flow was paused and never resumed."); a pause still in time, or with
no timeout, and runs in other states are left alone."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from orchestration import tasks
from orchestration.models import Flow, FlowRun, FlowRunState
from orchestration.models.states import StateType
from orchestration.services.lifecycle import PAUSE_EXPIRED_MESSAGE, expired_pauses_fail
from tenants.scoping import workspace_scope

pytestmark = pytest.mark.django_db


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


def _reload(run: FlowRun) -> FlowRun:
    with workspace_scope(run.workspace_id):
        return FlowRun.objects.select_related("state").get(id=run.id)


def test_an_expired_suspension_is_failed_and_others_are_left_alone(make_flow_run):
    now = timezone.now()
    expired = make_flow_run(
        StateType.PAUSED,
        initial_name="Suspended",
        initial_details={"pause_timeout": _iso(now - dt.timedelta(seconds=1)), "pause_reschedule": True},
    )
    in_time = make_flow_run(
        StateType.PAUSED, initial_details={"pause_timeout": _iso(now + dt.timedelta(minutes=5))}
    )
    no_timeout = make_flow_run(StateType.PAUSED)
    running = make_flow_run(StateType.RUNNING)

    assert expired_pauses_fail(now=now) == 1
    failed = _reload(expired)
    assert (failed.state_type, failed.state.message) == ("FAILED", PAUSE_EXPIRED_MESSAGE)
    assert failed.end_time is not None
    for run, state_type in ((in_time, "PAUSED"), (no_timeout, "PAUSED"), (running, "RUNNING")):
        assert _reload(run).state_type == state_type
    assert expired_pauses_fail(now=now) == 0

    # Later, the other pause expires too.
    assert expired_pauses_fail(now=now + dt.timedelta(minutes=6)) == 1
    assert _reload(in_time).state_type == "FAILED"


def _paused(workspace_id, pause_timeout: str) -> FlowRun:
    with workspace_scope(workspace_id):
        flow = Flow.objects.create(name=f"flow-{uuid.uuid4()}")
        run = FlowRun.objects.create(flow=flow, name="suspended")
        state = FlowRunState.objects.create(
            id=uuid.uuid4(), flow_run=run, type="PAUSED", name="Suspended", timestamp=timezone.now(),
            state_details={"pause_timeout": pause_timeout, "flow_run_id": str(run.id)},
        )  # fmt: skip
        FlowRun.objects.filter(id=run.id).update(state=state, state_type="PAUSED", state_name="Suspended")
        return run


def test_the_celery_task_sweeps_every_workspace(two_workspaces):
    past = _iso(timezone.now() - dt.timedelta(minutes=1))
    runs = [_paused(tenant.workspace.id, past) for tenant in two_workspaces]
    assert tasks.fail_expired_pauses() == 2
    for run, tenant in zip(runs, two_workspaces, strict=True):
        failed = _reload(run)
        assert failed.state_type == "FAILED" and failed.state.workspace_id == tenant.workspace.id
