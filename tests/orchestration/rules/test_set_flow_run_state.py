from __future__ import annotations

import contextvars
import datetime as dt
import uuid
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.errors import NotFound
from orchestration.api.flow_runs.wire import orchestration_result_to_wire
from orchestration.models import FlowRun, FlowRunState
from orchestration.models.states import StateType
from orchestration.policies import CoreFlowPolicy, MinimalFlowPolicy
from orchestration.rules import scheduling
from orchestration.rules.pending import PreventPendingTransitions
from orchestration.services.orchestration import OrchestrationResult, set_flow_run_state
from tenants.scoping import WorkspaceScopeMissing, workspace_scope
from tests.orchestration.rules.conftest import proposal

pytestmark = pytest.mark.django_db

PERSISTED = {"storage_key": "/results/abc", "serializer": {"type": "json"}}


def propose(run: FlowRun, state_type: StateType, *, force: bool = False, **kwargs) -> OrchestrationResult:
    return set_flow_run_state(flow_run_id=run.id, state=proposal(state_type, **kwargs), force=force)


def reload(run: FlowRun) -> FlowRun:
    return FlowRun.objects.select_related("state").get(id=run.id)


def event_names(recorded_events) -> list[str]:
    return [event["event"] for _, event in recorded_events]


class TestLifecycle:
    def test_the_initial_state_of_a_new_run(self, make_flow_run, recorded_events, workspace):
        run = make_flow_run(None)
        result = propose(run, StateType.PENDING, force=True)

        assert result.status == "ACCEPT"
        assert result.written
        assert result.details == {"type": "accept_details"}
        run = reload(run)
        assert run.state == result.state
        assert (run.state_type, run.state_name) == ("PENDING", "Pending")
        assert run.state_timestamp == result.state.timestamp
        assert run.expected_start_time == result.state.timestamp
        assert run.run_count == 0
        assert result.state.state_details["flow_run_id"] == str(run.id)
        ((workspace_id, event),) = recorded_events
        assert workspace_id == workspace.id
        assert event["event"] == "prefect.flow-run.Pending"
        assert event["payload"]["intended"] == {"from": None, "to": "PENDING"}
        assert event["payload"]["initial_state"] is None
        assert event["follows"] is None

    def test_pending_running_completed(self, make_flow_run, recorded_events):
        run = make_flow_run(StateType.PENDING)
        running = propose(run, StateType.RUNNING)
        completed = propose(run, StateType.COMPLETED, data=None, untrackable_result=True)

        assert [running.status, completed.status] == ["ACCEPT", "ACCEPT"]
        assert running.written and completed.written
        run = reload(run)
        assert (run.state_type, run.run_count) == ("COMPLETED", 1)
        assert run.start_time == running.state.timestamp
        assert run.end_time == completed.state.timestamp
        assert run.total_run_time == pytest.approx(
            (completed.state.timestamp - running.state.timestamp).total_seconds()
        )
        assert completed.state.state_details["untrackable_result"] is True
        assert event_names(recorded_events) == ["prefect.flow-run.Running", "prefect.flow-run.Completed"]
        assert FlowRunState.objects.filter(flow_run=run).count() == 3

    def test_flow_retries_as_the_client_sees_them(self, make_flow_run, recorded_events, monkeypatch):
        run = make_flow_run(StateType.PENDING, empirical_policy={"retries": 1, "retry_delay": 1})
        assert propose(run, StateType.RUNNING).status == "ACCEPT"

        failed = propose(run, StateType.FAILED, message="boom")
        assert (failed.status, failed.written) == ("REJECT", True)
        assert failed.details == {"type": "reject_details", "reason": "Retrying"}
        wire_state = orchestration_result_to_wire(failed)["state"]
        assert (wire_state["type"], wire_state["name"], wire_state["message"]) == (
            "SCHEDULED",
            "AwaitingRetry",
            "boom",
        )
        assert wire_state["state_details"]["scheduled_time"] is not None
        assert reload(run).empirical_policy["retry_type"] == "in_process"

        waiting = propose(run, StateType.RUNNING)
        assert (waiting.status, waiting.written) == ("WAIT", False)
        assert waiting.details == {
            "type": "wait_details",
            "delay_seconds": 1,
            "reason": "Scheduled time is in the future",
        }
        assert waiting.state == failed.state

        later = timezone.now() + dt.timedelta(seconds=2)
        monkeypatch.setattr(scheduling, "timezone", SimpleNamespace(now=lambda: later))
        retrying = propose(run, StateType.RUNNING)
        assert (retrying.status, retrying.written) == ("ACCEPT", True)
        assert reload(run).run_count == 2

        final = propose(run, StateType.FAILED, message="boom again")
        assert final.status == "ACCEPT"
        run = reload(run)
        assert run.state_type == "FAILED"
        assert run.empirical_policy["retry_type"] is None
        assert event_names(recorded_events) == [
            "prefect.flow-run.Running",
            "prefect.flow-run.AwaitingRetry",
            "prefect.flow-run.Running",
            "prefect.flow-run.Failed",
        ]

    def test_a_deployed_run_is_claimed_once(self, make_flow_run):
        run = make_flow_run(StateType.SCHEDULED, initial_details={"scheduled_time": timezone.now()})
        first = propose(run, StateType.PENDING)
        submitting = propose(run, StateType.PENDING, name="Submitting")
        second = propose(run, StateType.PENDING)

        assert first.status == submitting.status == "ACCEPT"
        assert submitting.state.state_details["scheduled_time"] == run.state.state_details["scheduled_time"]
        assert second.status == "ABORT"
        assert second.details["type"] == "abort_details"
        assert second.state == submitting.state
        assert propose(run, StateType.RUNNING).status == "ACCEPT"
        assert reload(run).next_scheduled_start_time is None

    def test_a_blocking_pause_and_its_key(self, make_flow_run):
        run = make_flow_run(StateType.PENDING)
        propose(run, StateType.RUNNING)
        paused = propose(run, StateType.PAUSED, pause_key="approve")
        assert paused.status == "ACCEPT"
        assert reload(run).empirical_policy["pause_keys"] == ["approve"]
        assert propose(run, StateType.PAUSED, pause_key="approve").status == "REJECT"  # not running

        resumed = propose(run, StateType.RUNNING)
        assert resumed.status == "ACCEPT"
        assert reload(run).empirical_policy["resuming"] is True
        again = propose(run, StateType.PAUSED, pause_key="approve")
        assert (again.status, again.details["reason"]) == ("REJECT", "This pause has already fired.")
        assert reload(run).state_type == "RUNNING"
        assert propose(run, StateType.COMPLETED).status == "ACCEPT"
        assert reload(run).empirical_policy["resuming"] is False

    def test_a_suspended_run_resumes_without_a_new_attempt(self, make_flow_run):
        run = make_flow_run(StateType.PENDING, deployment_id=uuid.uuid4())
        propose(run, StateType.RUNNING)
        suspended = propose(run, StateType.PAUSED, name="Suspended", pause_reschedule=True, pause_key="k")
        assert suspended.status == "ACCEPT"
        resuming = propose(run, StateType.SCHEDULED, name="Resuming")
        assert resuming.status == "ACCEPT"
        assert reload(run).empirical_policy["resuming"] is True
        assert propose(run, StateType.PENDING).status == "ACCEPT"
        assert propose(run, StateType.RUNNING).status == "ACCEPT"
        run = reload(run)
        assert run.run_count == 1
        assert run.empirical_policy["resuming"] is False
        assert run.empirical_policy["pause_keys"] == ["k"]

    def test_cancellation(self, make_flow_run, recorded_events):
        run = make_flow_run(StateType.RUNNING, infrastructure_pid="4242")
        cancelling = propose(run, StateType.CANCELLING)
        assert (cancelling.status, cancelling.state.name) == ("ACCEPT", "Cancelling")
        assert propose(run, StateType.COMPLETED).status == "REJECT"
        cancelled = propose(
            run, StateType.CANCELLED, force=True, message="Flow run was cancelled successfully."
        )
        assert cancelled.status == "ACCEPT"
        run = reload(run)
        assert run.state_type == "CANCELLED"
        assert run.end_time == cancelled.state.timestamp
        assert event_names(recorded_events) == ["prefect.flow-run.Cancelling", "prefect.flow-run.Cancelled"]

    def test_cancelling_a_scheduled_run_cancels_it(self, make_flow_run):
        run = make_flow_run(StateType.SCHEDULED)
        result = propose(run, StateType.CANCELLING)
        assert (result.status, result.written, result.state.type) == ("REJECT", True, "CANCELLED")


class TestRejectionsWriteNothing:
    def test_a_repeated_transition_is_rejected_with_the_current_state(self, make_flow_run, recorded_events):
        run = make_flow_run(StateType.PENDING)
        transition_id = uuid.uuid4()
        first = propose(run, StateType.RUNNING, transition_id=transition_id)
        updated = reload(run).updated
        again = propose(run, StateType.RUNNING, transition_id=transition_id)

        assert (first.status, again.status) == ("ACCEPT", "REJECT")
        assert again.state == first.state
        assert not again.written
        assert again.details["reason"] == "This run has already made this state transition."
        run = reload(run)
        assert (run.run_count, run.updated) == (1, updated)
        assert len(recorded_events) == 1
        assert FlowRunState.objects.filter(flow_run=run).count() == 2

    def test_wait_and_abort_emit_nothing(self, make_flow_run, recorded_events):
        run = make_flow_run(
            StateType.SCHEDULED, initial_details={"scheduled_time": timezone.now() + dt.timedelta(1)}
        )
        assert propose(run, StateType.RUNNING).status == "WAIT"
        done = make_flow_run(StateType.COMPLETED)
        aborted = propose(done, StateType.CRASHED)
        assert aborted.status == "ABORT"
        assert aborted.state == done.state
        assert recorded_events == []

    def test_a_rule_error_rolls_back_and_propagates(self, make_flow_run, monkeypatch):
        run = make_flow_run(StateType.SCHEDULED)

        def explode(self, initial_state, proposed_state, context):
            context.run.run_count = 99
            raise RuntimeError("broken rule")

        monkeypatch.setattr(PreventPendingTransitions, "before_transition", explode)
        run.state.type = StateType.RUNNING
        run.state.save()
        with pytest.raises(RuntimeError, match="broken rule"):
            propose(run, StateType.PENDING)
        run = reload(run)
        assert run.run_count == 0
        assert FlowRunState.objects.filter(flow_run=run).count() == 1


class TestForce:
    def test_force_skips_the_core_rules(self, make_flow_run):
        run = make_flow_run(StateType.RUNNING)
        assert propose(run, StateType.PENDING).status == "ABORT"
        forced = propose(run, StateType.PENDING, force=True, name="NotReady")
        assert (forced.status, forced.state.name) == ("ACCEPT", "NotReady")

    def test_force_leaves_cancelling_for_anything(self, make_flow_run):
        run = make_flow_run(StateType.CANCELLING)
        assert propose(run, StateType.CRASHED, force=True).status == "ACCEPT"

    def test_force_still_protects_a_persisted_result(self, make_flow_run):
        run = make_flow_run(StateType.COMPLETED, initial_data=PERSISTED)
        result = propose(run, StateType.COMPLETED, force=True)
        assert (result.status, result.written) == ("REJECT", False)
        assert result.state.data == PERSISTED
        assert propose(run, StateType.FAILED, force=True).status == "ACCEPT"

    def test_force_still_cancels_a_scheduled_run_directly(self, make_flow_run):
        run = make_flow_run(StateType.SCHEDULED)
        assert propose(run, StateType.CANCELLING, force=True).state.type == "CANCELLED"


class TestProposal:
    def test_server_side_id_timestamp_and_default_name(self, make_flow_run):
        run = make_flow_run(StateType.RUNNING, infrastructure_pid="1")
        state = proposal(StateType.CANCELLING)
        state.timestamp = timezone.now() - dt.timedelta(days=3)
        before = timezone.now()
        result = set_flow_run_state(flow_run_id=run.id, state=state)
        assert result.state.name == "Cancelling"
        assert result.state.timestamp >= before
        assert isinstance(result.state.id, uuid.UUID)
        assert state.name is None  # the caller's object is not mutated

    def test_a_scheduled_state_without_time_is_due_now(self, make_flow_run):
        run = make_flow_run(None)
        result = propose(run, StateType.SCHEDULED, force=True)
        assert result.state.state_details["scheduled_time"] is not None
        assert reload(run).next_scheduled_start_time is not None


class TestResult:
    def test_wire_shapes(self, make_flow_run):
        run = make_flow_run(StateType.PENDING)
        accepted = orchestration_result_to_wire(propose(run, StateType.RUNNING))
        assert accepted["status"] == "ACCEPT"
        assert accepted["details"] == {"type": "accept_details"}
        assert set(accepted["state"]) == {
            "id",
            "type",
            "name",
            "timestamp",
            "message",
            "data",
            "state_details",
        }
        assert accepted["state"]["timestamp"].endswith("Z")

        aborted = orchestration_result_to_wire(propose(run, StateType.PENDING))
        assert aborted["status"] == "ABORT"
        assert set(aborted["details"]) == {"type", "reason"}
        assert aborted["state"]["id"] == accepted["state"]["id"]

    def test_an_abort_for_a_run_without_state_reports_none(self, make_flow_run):
        run = make_flow_run(None)
        result = propose(run, StateType.PAUSED)
        assert (result.status, result.state) == ("ABORT", None)
        assert orchestration_result_to_wire(result)["state"] is None


class TestEvent:
    def test_state_event_shape(self, make_flow_run, recorded_events, flow):
        deployment_id = uuid.uuid4()
        run = make_flow_run(
            StateType.PENDING,
            tags=["b-tag", "a-tag"],
            deployment_id=deployment_id,
            work_queue_id=uuid.uuid4(),
            work_queue_name="default",
            created_by={"id": str(deployment_id), "type": "DEPLOYMENT", "display_value": "my-deployment"},
        )
        result = propose(run, StateType.RUNNING, message="go")
        ((_, event),) = recorded_events

        state = result.state
        assert event["id"] == str(state.id)
        assert event["event"] == "prefect.flow-run.Running"
        assert event["occurred"].endswith("Z")
        assert event["follows"] == str(run.state.id)
        assert event["resource"] == {
            "prefect.resource.id": f"prefect.flow-run.{run.id}",
            "prefect.resource.name": run.name,
            "prefect.run-count": "1",
            "prefect.state-message": "go",
            "prefect.state-name": "Running",
            "prefect.state-timestamp": state.timestamp.isoformat(),
            "prefect.state-type": "RUNNING",
        }
        related = event["related"]
        assert related[0] == {
            "prefect.resource.id": f"prefect.flow.{flow.id}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": flow.name,
        }
        assert related[1]["prefect.resource.id"] == f"prefect.deployment.{deployment_id}"
        assert related[1]["prefect.resource.role"] == "deployment"
        assert related[2]["prefect.resource.role"] == "work-queue"
        assert related[2]["prefect.resource.name"] == "default"
        assert [r["prefect.resource.id"] for r in related if r["prefect.resource.role"] == "tag"] == [
            "prefect.tag.a-tag",
            "prefect.tag.b-tag",
            "prefect.tag.flow-tag",
        ]
        assert related[-1] == {
            "prefect.resource.id": f"prefect.deployment.{deployment_id}",
            "prefect.resource.role": "creator",
            "prefect.resource.name": "my-deployment",
        }
        assert event["payload"] == {
            "intended": {"from": "PENDING", "to": "RUNNING"},
            "initial_state": {"type": "PENDING", "name": "Pending"},
            "validated_state": {"type": "RUNNING", "name": "Running", "message": "go"},
        }

    def test_a_paused_state_payload_says_whether_it_reschedules(self, make_flow_run, recorded_events):
        run = make_flow_run(StateType.RUNNING)
        propose(run, StateType.PAUSED)
        ((_, event),) = recorded_events
        assert event["payload"]["validated_state"]["pause_reschedule"] == "false"


class TestScopeAndLocking:
    def test_unknown_run(self, workspace):
        with pytest.raises(NotFound):
            set_flow_run_state(flow_run_id=uuid.uuid4(), state=proposal(StateType.RUNNING))

    def test_another_workspaces_run_is_not_found(self, two_workspaces, make_flow_run):
        run = make_flow_run(StateType.PENDING)
        other, _ = two_workspaces
        with workspace_scope(other.workspace.id), pytest.raises(NotFound):
            propose(run, StateType.RUNNING)
        assert reload(run).state_type == "PENDING"

    def test_requires_a_workspace_scope(self, make_flow_run):
        run = make_flow_run(StateType.PENDING)
        unscoped = contextvars.Context()  # a context in which no workspace scope was ever set
        with pytest.raises(WorkspaceScopeMissing):
            unscoped.run(propose, run, StateType.RUNNING)

    def test_the_run_row_is_locked(self, make_flow_run):
        run = make_flow_run(StateType.PENDING)
        with CaptureQueriesContext(connection) as queries:
            propose(run, StateType.RUNNING)
        if connection.features.has_select_for_update_of:
            assert any("FOR UPDATE OF" in query["sql"] for query in queries.captured_queries)


def test_policies_mirror_prefects_order():
    assert [rule.__name__ for rule in CoreFlowPolicy.priority()] == [
        "PreserveDeploymentConcurrencyLeaseId",
        "PreventDuplicateTransitions",
        "HandleFlowTerminalStateTransitions",
        "EnforceCancellingToCancelledTransition",
        "BypassCancellingFlowRunsWithNoInfra",
        "PreventPendingTransitions",
        "ValidateDeploymentConcurrencyAtRunning",
        "SecureFlowConcurrencySlots",
        "RemoveDeploymentConcurrencyLeaseForOldClientVersions",
        "EnsureOnlyScheduledFlowsMarkedLate",
        "HandlePausingFlows",
        # The second half of Prefect's HandlePausingFlows.after_transition (stale run input).
        "ClearStaleRunInput",
        "HandleResumingPausedFlows",
        "CopyScheduledTime",
        "WaitForScheduledTime",
        "RetryFailedFlows",
        "InstrumentFlowRunStateTransitions",
        "ReleaseFlowConcurrencySlots",
    ]
    assert [rule.__name__ for rule in MinimalFlowPolicy.priority()] == [
        "PreserveDeploymentConcurrencyLeaseId",
        "PreventResultDataLoss",
        "BypassCancellingFlowRunsWithNoInfra",
        "InstrumentFlowRunStateTransitions",
        "ReleaseFlowConcurrencySlots",
    ]
