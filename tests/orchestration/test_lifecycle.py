"""The lifecycle sweeps: late runs, zombie runs, abandoned cancellations; across workspaces, and
only for runs that are still due when their row is locked."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.test import override_settings
from django.utils import timezone

from orchestration import tasks
from orchestration.models import Event, Flow, FlowRun, Worker
from orchestration.schemas.actions import FlowRunCreate
from orchestration.schemas.states import StateCreate, StateDetails
from orchestration.services.flow_runs import flow_run_create
from orchestration.services.lifecycle import cancelling_runs_finish, late_runs_mark, zombie_runs_mark_crashed
from orchestration.services.orchestration import set_flow_run_state
from tenants.scoping import workspace_scope
from tests.conftest import make_tenant

pytestmark = pytest.mark.django_db


def _run(workspace_id, state: StateCreate, **fields) -> FlowRun:
    with workspace_scope(workspace_id):
        flow, _ = Flow.objects.get_or_create(workspace_id=workspace_id, name="etl")
        run, _ = flow_run_create(data=FlowRunCreate(flow_id=flow.id, state=state))
        if fields:
            FlowRun.objects.filter(id=run.id).update(**fields)
        return run


def _state(workspace_id, run_id, state_type, **extra) -> None:
    with workspace_scope(workspace_id):
        set_flow_run_state(flow_run_id=run_id, state=StateCreate(type=state_type, **extra), force=True)


def _get(workspace_id, run_id) -> FlowRun:
    with workspace_scope(workspace_id):
        return FlowRun.objects.select_related("state").get(id=run_id)


def _scheduled(at: dt.datetime) -> StateCreate:
    return StateCreate(type="SCHEDULED", state_details=StateDetails(scheduled_time=at))


def _heartbeat(workspace_id, run_id, occurred: dt.datetime) -> None:
    Event.objects.create(
        workspace_id=workspace_id,
        id=uuid.uuid4(),
        occurred=occurred,
        received=occurred,
        event="prefect.flow-run.heartbeat",
        resource_id=f"prefect.flow-run.{run_id}",
        resource={"prefect.resource.id": f"prefect.flow-run.{run_id}"},
    )


class TestLateRuns:
    def test_overdue_scheduled_runs_are_marked_late(self, tenant):
        ws = tenant.workspace.id
        now = timezone.now()
        overdue = _run(ws, _scheduled(now - dt.timedelta(seconds=60)))
        recent = _run(ws, _scheduled(now - dt.timedelta(seconds=5)))
        future = _run(ws, _scheduled(now + dt.timedelta(hours=1)))
        retrying = _run(ws, StateCreate(type="SCHEDULED", name="AwaitingRetry",
                                        state_details=StateDetails(scheduled_time=now - dt.timedelta(minutes=5))))  # fmt: skip
        with override_settings(LATE_RUN_AFTER_SECONDS=15):
            assert late_runs_mark(now=now) == 1
            assert late_runs_mark(now=now) == 0
        late = _get(ws, overdue.id)
        assert (late.state_type, late.state_name) == ("SCHEDULED", "Late")
        assert late.next_scheduled_start_time == overdue.next_scheduled_start_time
        assert late.state.state_details["scheduled_time"] is not None
        for run in (recent, future, retrying):
            assert _get(ws, run.id).state_name != "Late"
        assert Event.objects.for_workspace(ws).filter(event="prefect.flow-run.Late").count() == 1

    def test_every_workspace_is_swept_in_its_own_scope(self, tenant):
        other = make_tenant()
        past = timezone.now() - dt.timedelta(minutes=2)
        mine, theirs = _run(tenant.workspace.id, _scheduled(past)), _run(other.workspace.id, _scheduled(past))
        assert tasks.mark_late_runs() == 2
        assert _get(tenant.workspace.id, mine.id).state_name == "Late"
        assert _get(other.workspace.id, theirs.id).state_name == "Late"
        assert (
            Event.objects.for_workspace(other.workspace.id).filter(event="prefect.flow-run.Late").count() == 1
        )

    def test_a_run_that_already_left_scheduled_is_left_alone(self, tenant):
        ws = tenant.workspace.id
        run = _run(ws, _scheduled(timezone.now() - dt.timedelta(minutes=2)))
        _state(ws, run.id, "PENDING")
        assert late_runs_mark() == 0
        assert _get(ws, run.id).state_type == "PENDING"


class TestZombies:
    def _running(self, ws, **fields):
        run = _run(ws, StateCreate(type="PENDING"), **fields)
        _state(ws, run.id, "RUNNING")
        return run

    def test_a_silent_running_run_crashes(self, tenant):
        ws = tenant.workspace.id
        run = self._running(ws)
        with override_settings(FLOW_RUN_HEARTBEAT_TIMEOUT_SECONDS=600):
            assert zombie_runs_mark_crashed(now=timezone.now() + dt.timedelta(seconds=599)) == 0
            assert zombie_runs_mark_crashed(now=timezone.now() + dt.timedelta(seconds=700)) == 1
        crashed = _get(ws, run.id)
        assert crashed.state_type == "CRASHED" and crashed.end_time is not None
        assert "missing heartbeats" in crashed.state.message and "600 seconds" in crashed.state.message
        assert Event.objects.for_workspace(ws).filter(event="prefect.flow-run.Crashed").count() == 1

    def test_a_recent_heartbeat_keeps_it_alive(self, tenant):
        ws = tenant.workspace.id
        run = self._running(ws)
        later = timezone.now() + dt.timedelta(seconds=700)
        _heartbeat(ws, run.id, later - dt.timedelta(seconds=60))
        with override_settings(FLOW_RUN_HEARTBEAT_TIMEOUT_SECONDS=600):
            assert zombie_runs_mark_crashed(now=later) == 0
            assert zombie_runs_mark_crashed(now=later + dt.timedelta(seconds=600)) == 1
        assert _get(ws, run.id).state_type == "CRASHED"

    def test_a_heartbeat_of_another_workspace_does_not_count(self, tenant):
        other = make_tenant()
        run = self._running(tenant.workspace.id)
        later = timezone.now() + dt.timedelta(seconds=700)
        _heartbeat(other.workspace.id, run.id, later)
        assert zombie_runs_mark_crashed(now=later) == 1

    def test_other_states_are_not_touched(self, tenant):
        ws = tenant.workspace.id
        pending = _run(ws, StateCreate(type="PENDING"))
        done = self._running(ws)
        _state(ws, done.id, "COMPLETED")
        assert tasks.mark_crashed_runs() == 0
        assert zombie_runs_mark_crashed(now=timezone.now() + dt.timedelta(days=1)) == 0
        assert _get(ws, pending.id).state_type == "PENDING" and _get(ws, done.id).state_type == "COMPLETED"


class TestAbandonedCancellations:
    def _cancelling(self, ws, **fields):
        run = _run(ws, StateCreate(type="PENDING"), **fields)
        _state(ws, run.id, "RUNNING")
        _state(ws, run.id, "CANCELLING")
        return run

    def _pool(self, ws, *, heartbeat: dt.datetime | None):
        from orchestration.services.work_pools import work_pool_create

        with workspace_scope(ws):
            pool = work_pool_create(name=f"pool-{uuid.uuid4().hex[:6]}", type="process")
            if heartbeat is not None:
                Worker.objects.create(
                    workspace_id=ws,
                    work_pool=pool,
                    name="w",
                    last_heartbeat_time=heartbeat,
                    heartbeat_interval_seconds=30,
                )
        return pool

    def test_without_a_pool_it_is_cancelled_after_the_timeout(self, tenant):
        ws = tenant.workspace.id
        run = self._cancelling(ws, infrastructure_pid="123")
        with override_settings(CANCELLING_TIMEOUT_SECONDS=120):
            assert cancelling_runs_finish(now=timezone.now() + dt.timedelta(seconds=60)) == 0
            assert cancelling_runs_finish(now=timezone.now() + dt.timedelta(seconds=180)) == 1
        cancelled = _get(ws, run.id)
        assert cancelled.state_type == "CANCELLED"
        assert "no work pool" in cancelled.state.message

    def test_an_online_worker_with_a_process_to_kill_keeps_it(self, tenant):
        ws = tenant.workspace.id
        later = timezone.now() + dt.timedelta(seconds=300)
        pool = self._pool(ws, heartbeat=later - dt.timedelta(seconds=10))
        kept = self._cancelling(ws, work_pool_id=pool.id, infrastructure_pid="123")
        no_pid = self._cancelling(ws, work_pool_id=pool.id)
        assert cancelling_runs_finish(now=later) == 1
        assert _get(ws, kept.id).state_type == "CANCELLING"
        assert _get(ws, no_pid.id).state_type == "CANCELLED"
        assert "no infrastructure" in _get(ws, no_pid.id).state.message

    def test_an_offline_pool_cannot_finish_it(self, tenant):
        ws = tenant.workspace.id
        later = timezone.now() + dt.timedelta(seconds=300)
        pool = self._pool(ws, heartbeat=later - dt.timedelta(seconds=600))
        # Found through its work queue as well as through the pool column.
        by_queue = self._cancelling(ws, work_queue_id=pool.default_queue_id, infrastructure_pid="1")
        assert tasks.finish_abandoned_cancellations() == 0  # not yet past the timeout
        assert cancelling_runs_finish(now=later) == 1
        assert "no worker of its work pool is online" in _get(ws, by_queue.id).state.message
