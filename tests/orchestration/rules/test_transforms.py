from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from orchestration.models import FlowRunState
from orchestration.models.states import TERMINAL_STATE_TYPES, StateType
from orchestration.policies import GlobalFlowPolicy
from orchestration.rules.base import BaseOrchestrationRule, SetStateStatus, apply_rules
from orchestration.rules.transforms import (
    EnsureFlowRunStateTimestampIsUnique,
    IncrementFlowRunCount,
    IncrementRunTime,
    PreserveDeploymentConcurrencyLeaseId,
    RemoveResumingIndicator,
    SetEndTime,
    SetExpectedStartTime,
    SetNextScheduledStartTime,
    SetRunStateName,
    SetRunStateTimestamp,
    SetRunStateType,
    SetStartTime,
    UpdateStateDetails,
    UpdateSubflowStateDetails,
)

pytestmark = pytest.mark.django_db

TERMINAL = sorted(TERMINAL_STATE_TYPES)
ALL_TRANSFORMS = GlobalFlowPolicy.priority()


class Delay(BaseOrchestrationRule):
    FROM_STATES = frozenset({None, *StateType})
    TO_STATES = frozenset(StateType)

    def before_transition(self, initial_state, proposed_state, context) -> None:
        self.delay_transition(5, "later")


class TestDenormalisedState:
    def test_the_run_carries_its_new_state(self, initialize_orchestration):
        context = initialize_orchestration(StateType.PENDING, StateType.RUNNING, proposed_name="Retrying")
        apply_rules(context, [SetRunStateType, SetRunStateName, SetRunStateTimestamp])
        run = context.run
        assert (run.state_type, run.state_name) == ("RUNNING", "Retrying")
        assert run.state_timestamp == context.proposed_state.timestamp == context.validated_state.timestamp
        assert run.state == context.validated_state

    def test_nothing_changes_when_no_state_is_written(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.COMPLETED,
            initial_timestamp=timezone.now() - dt.timedelta(seconds=30),
            empirical_policy={"resuming": True},
        )
        run = context.run
        before = {
            name: getattr(run, name)
            for name in (
                "state_id",
                "state_type",
                "state_name",
                "state_timestamp",
                "run_count",
                "start_time",
                "end_time",
                "total_run_time",
                "expected_start_time",
                "next_scheduled_start_time",
                "empirical_policy",
            )
        }
        apply_rules(context, [Delay, *ALL_TRANSFORMS])
        assert context.response_status == SetStateStatus.WAIT
        assert not context.written
        assert {name: getattr(run, name) for name in before} == before
        assert FlowRunState.objects.filter(flow_run=run).count() == 1


class TestTimes:
    def test_start_time_is_the_first_running_state(self, initialize_orchestration):
        context = initialize_orchestration(StateType.PENDING, StateType.RUNNING)
        apply_rules(context, [SetStartTime])
        assert context.run.start_time == context.proposed_state.timestamp

    def test_start_time_is_kept_on_later_runs(self, initialize_orchestration):
        first = timezone.now() - dt.timedelta(hours=1)
        context = initialize_orchestration(StateType.SCHEDULED, StateType.RUNNING, start_time=first)
        apply_rules(context, [SetStartTime])
        assert context.run.start_time == first

    def test_start_time_is_not_set_by_other_states(self, initialize_orchestration):
        context = initialize_orchestration(StateType.SCHEDULED, StateType.PENDING)
        apply_rules(context, [SetStartTime])
        assert context.run.start_time is None

    @pytest.mark.parametrize("proposed", TERMINAL)
    def test_end_time_on_entering_a_final_state(self, initialize_orchestration, proposed):
        started = timezone.now() - dt.timedelta(minutes=1)
        context = initialize_orchestration(StateType.RUNNING, proposed, start_time=started)
        apply_rules(context, [SetEndTime])
        assert context.run.end_time == context.proposed_state.timestamp
        assert context.run.start_time == started

    def test_a_run_that_never_ran_gets_a_start_time_when_it_ends(self, initialize_orchestration):
        context = initialize_orchestration(StateType.PENDING, StateType.CRASHED)
        apply_rules(context, [SetEndTime])
        assert context.run.start_time == context.run.end_time == context.proposed_state.timestamp

    def test_end_time_is_not_moved_by_a_second_final_state(self, initialize_orchestration):
        ended = timezone.now() - dt.timedelta(minutes=1)
        context = initialize_orchestration(
            StateType.FAILED, StateType.COMPLETED, start_time=ended, end_time=ended
        )
        apply_rules(context, [SetEndTime])
        assert context.run.end_time == ended

    def test_leaving_a_final_state_clears_end_time(self, initialize_orchestration):
        ended = timezone.now() - dt.timedelta(minutes=1)
        context = initialize_orchestration(
            StateType.FAILED, StateType.RUNNING, start_time=ended, end_time=ended
        )
        apply_rules(context, [SetEndTime])
        assert context.run.end_time is None

    def test_leaving_running_accumulates_run_time(self, initialize_orchestration):
        entered = timezone.now() - dt.timedelta(seconds=90)
        context = initialize_orchestration(
            StateType.RUNNING, StateType.COMPLETED, initial_timestamp=entered, total_run_time=10.0
        )
        apply_rules(context, [IncrementRunTime])
        expected = 10.0 + (context.proposed_state.timestamp - entered).total_seconds()
        assert context.run.total_run_time == pytest.approx(expected)
        assert 99 < context.run.total_run_time < 110

    def test_run_time_only_counts_running(self, initialize_orchestration):
        context = initialize_orchestration(StateType.PENDING, StateType.RUNNING, total_run_time=3.0)
        apply_rules(context, [IncrementRunTime])
        assert context.run.total_run_time == 3.0


class TestScheduledTimes:
    def test_expected_start_time_from_the_first_scheduled_state(self, initialize_orchestration):
        at = timezone.now() + dt.timedelta(hours=2)
        context = initialize_orchestration(None, StateType.SCHEDULED, proposed_details={"scheduled_time": at})
        apply_rules(context, [SetExpectedStartTime, SetNextScheduledStartTime])
        assert context.run.expected_start_time == at
        assert context.run.next_scheduled_start_time == at

    def test_expected_start_time_from_the_first_other_state(self, initialize_orchestration):
        context = initialize_orchestration(None, StateType.PENDING)
        apply_rules(context, [SetExpectedStartTime])
        assert context.run.expected_start_time == context.proposed_state.timestamp

    def test_expected_start_time_is_set_once(self, initialize_orchestration):
        first = timezone.now() - dt.timedelta(days=1)
        context = initialize_orchestration(StateType.RUNNING, StateType.SCHEDULED, expected_start_time=first)
        apply_rules(context, [SetExpectedStartTime])
        assert context.run.expected_start_time == first

    def test_leaving_scheduled_clears_next_scheduled_start_time(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.PENDING, next_scheduled_start_time=timezone.now()
        )
        apply_rules(context, [SetNextScheduledStartTime])
        assert context.run.next_scheduled_start_time is None

    def test_a_scheduled_state_without_time_is_scheduled_now(self, initialize_orchestration):
        before = timezone.now()
        context = initialize_orchestration(StateType.RUNNING, StateType.SCHEDULED)
        apply_rules(context, [SetNextScheduledStartTime])
        assert before <= context.run.next_scheduled_start_time <= timezone.now()


class TestRunCount:
    def test_entering_running_counts_an_attempt(self, initialize_orchestration):
        context = initialize_orchestration(StateType.PENDING, StateType.RUNNING, run_count=1)
        apply_rules(context, [IncrementFlowRunCount])
        assert context.run.run_count == 2

    @pytest.mark.parametrize("proposed", sorted(set(StateType) - {StateType.RUNNING}))
    def test_other_states_do_not_count(self, initialize_orchestration, proposed):
        context = initialize_orchestration(StateType.RUNNING, proposed, run_count=1)
        apply_rules(context, [IncrementFlowRunCount])
        assert context.run.run_count == 1

    def test_resuming_is_not_a_new_attempt_and_clears_the_indicator(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.PAUSED, StateType.RUNNING, run_count=1, empirical_policy={"resuming": True}
        )
        apply_rules(context, [IncrementFlowRunCount, RemoveResumingIndicator])
        assert context.run.run_count == 1
        assert context.run.empirical_policy["resuming"] is False

    @pytest.mark.parametrize("proposed", TERMINAL)
    def test_a_final_state_clears_the_resuming_indicator(self, initialize_orchestration, proposed):
        context = initialize_orchestration(StateType.PAUSED, proposed, empirical_policy={"resuming": True})
        apply_rules(context, [RemoveResumingIndicator])
        assert context.run.empirical_policy["resuming"] is False

    def test_scheduled_keeps_the_resuming_indicator(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.PAUSED, StateType.SCHEDULED, empirical_policy={"resuming": True}
        )
        apply_rules(context, [RemoveResumingIndicator])
        assert context.run.empirical_policy["resuming"] is True


class TestStateDetails:
    def test_a_state_names_its_run(self, initialize_orchestration):
        context = initialize_orchestration(StateType.PENDING, StateType.RUNNING)
        context.proposed_state.state_details.flow_run_id = uuid.uuid4()
        apply_rules(context, [UpdateStateDetails])
        assert context.validated_state.state_details["flow_run_id"] == str(context.run.id)

    def test_a_subflow_state_names_its_parent_task_run(self, initialize_orchestration):
        parent = uuid.uuid4()
        context = initialize_orchestration(StateType.PENDING, StateType.RUNNING, parent_task_run_id=parent)
        apply_rules(context, [UpdateSubflowStateDetails])
        assert context.validated_state.state_details["task_run_id"] == str(parent)

    def test_a_top_level_flow_state_names_no_task_run(self, initialize_orchestration):
        context = initialize_orchestration(StateType.PENDING, StateType.RUNNING)
        apply_rules(context, [UpdateSubflowStateDetails])
        assert context.validated_state.state_details["task_run_id"] is None

    def test_the_deployment_concurrency_lease_is_carried_forward(self, initialize_orchestration):
        lease = uuid.uuid4()
        context = initialize_orchestration(
            StateType.PENDING, StateType.RUNNING, initial_details={"deployment_concurrency_lease_id": lease}
        )
        apply_rules(context, [PreserveDeploymentConcurrencyLeaseId])
        assert context.validated_state.state_details["deployment_concurrency_lease_id"] == str(lease)

    def test_a_new_lease_wins(self, initialize_orchestration):
        old, new = uuid.uuid4(), uuid.uuid4()
        context = initialize_orchestration(
            StateType.PENDING,
            StateType.RUNNING,
            initial_details={"deployment_concurrency_lease_id": old},
            proposed_details={"deployment_concurrency_lease_id": new},
        )
        apply_rules(context, [PreserveDeploymentConcurrencyLeaseId])
        assert context.proposed_state.state_details.deployment_concurrency_lease_id == new


class TestUniqueTimestamps:
    def test_a_colliding_timestamp_moves_on_a_microsecond(self, initialize_orchestration):
        at = timezone.now() - dt.timedelta(seconds=1)
        context = initialize_orchestration(StateType.PENDING, StateType.RUNNING, initial_timestamp=at)
        context.proposed_state.timestamp = at
        apply_rules(context, [EnsureFlowRunStateTimestampIsUnique, SetRunStateTimestamp])
        assert context.validated_state.timestamp == at + dt.timedelta(microseconds=1)
        assert context.run.state_timestamp == context.validated_state.timestamp

    def test_a_free_timestamp_is_kept(self, initialize_orchestration):
        context = initialize_orchestration(StateType.PENDING, StateType.RUNNING)
        proposed_at = context.proposed_state.timestamp
        apply_rules(context, [EnsureFlowRunStateTimestampIsUnique])
        assert context.validated_state.timestamp == proposed_at


def test_global_transforms_run_in_prefects_order():
    assert [t.__name__ for t in GlobalFlowPolicy.priority()] == [
        "EnsureFlowRunStateTimestampIsUnique",
        "SetRunStateType",
        "SetRunStateName",
        "SetRunStateTimestamp",
        "SetStartTime",
        "SetEndTime",
        "IncrementRunTime",
        "SetExpectedStartTime",
        "SetNextScheduledStartTime",
        "UpdateStateDetails",
        "UpdateSubflowParentTask",
        "UpdateSubflowStateDetails",
        "IncrementFlowRunCount",
        "RemoveResumingIndicator",
    ]
