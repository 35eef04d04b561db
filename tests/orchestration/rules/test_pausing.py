from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from orchestration.models.states import TERMINAL_STATE_TYPES, StateType
from orchestration.rules.base import SetStateStatus, apply_rules
from orchestration.rules.pausing import HandlePausingFlows, HandleResumingPausedFlows
from tests.orchestration.rules.conftest import ungoverned

pytestmark = pytest.mark.django_db


class TestHandlePausingFlows:
    def test_pauses_a_running_run_and_records_the_key(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.PAUSED,
            proposed_details={"pause_key": "approval"},
            empirical_policy={"pause_keys": ["earlier"]},
        )
        apply_rules(context, [HandlePausingFlows])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.validated_state.type == StateType.PAUSED
        assert context.run.empirical_policy["pause_keys"] == ["earlier", "approval"]

    def test_a_pause_without_key_records_a_generated_one(self, initialize_orchestration):
        context = initialize_orchestration(StateType.RUNNING, StateType.PAUSED)
        apply_rules(context, [HandlePausingFlows])
        (key,) = context.run.empirical_policy["pause_keys"]
        uuid.UUID(key)

    def test_a_pause_key_fires_once(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.PAUSED,
            proposed_details={"pause_key": "approval"},
            empirical_policy={"pause_keys": ["approval"]},
        )
        apply_rules(context, [HandlePausingFlows])
        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details["reason"] == "This pause has already fired."
        assert context.validated_state.type == StateType.RUNNING
        assert context.run.empirical_policy["pause_keys"] == ["approval"]

    def test_a_run_without_state_cannot_be_paused(self, initialize_orchestration):
        context = initialize_orchestration(None, StateType.PAUSED)
        apply_rules(context, [HandlePausingFlows])
        assert context.response_status == SetStateStatus.ABORT
        assert context.response_details["reason"] == "Cannot pause flows with no state."
        assert context.validated_state is None

    @pytest.mark.parametrize("initial", [StateType.SCHEDULED, StateType.PENDING, StateType.PAUSED])
    def test_only_running_runs_can_be_paused(self, initialize_orchestration, initial):
        context = initialize_orchestration(initial, StateType.PAUSED, proposed_name="Suspended")
        apply_rules(context, [HandlePausingFlows])
        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details["reason"] == "Cannot suspend flows that are not currently running."
        assert context.run.empirical_policy == {}

    def test_suspending_needs_a_deployment(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.PAUSED,
            proposed_name="Suspended",
            proposed_details={"pause_reschedule": True},
        )
        apply_rules(context, [HandlePausingFlows])
        assert context.response_status == SetStateStatus.ABORT
        assert context.response_details["reason"] == "Cannot suspend flows without a deployment."

    def test_subflows_cannot_be_suspended(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.PAUSED,
            proposed_details={"pause_reschedule": True},
            parent_task_run_id=uuid.uuid4(),
            deployment_id=uuid.uuid4(),
        )
        apply_rules(context, [HandlePausingFlows])
        assert context.response_status == SetStateStatus.ABORT
        assert context.response_details["reason"] == "Cannot pause subflows."

    def test_a_deployed_run_can_be_suspended(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.PAUSED,
            proposed_name="Suspended",
            proposed_details={"pause_reschedule": True, "pause_key": "k"},
            deployment_id=uuid.uuid4(),
        )
        apply_rules(context, [HandlePausingFlows])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.validated_state.state_details["pause_reschedule"] is True

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        transitions = ungoverned(HandlePausingFlows)
        assert all(proposed != StateType.PAUSED for _, proposed in transitions)
        assert_rule_ignores(HandlePausingFlows, transitions)


class TestHandleResumingPausedFlows:
    def test_resuming_marks_the_run_resuming(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.PAUSED,
            StateType.RUNNING,
            initial_details={"pause_timeout": timezone.now() + dt.timedelta(hours=1)},
            empirical_policy={"pause_keys": ["k"], "resuming": False},
        )
        apply_rules(context, [HandleResumingPausedFlows])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.run.empirical_policy == {"pause_keys": ["k"], "resuming": True}

    @pytest.mark.parametrize("proposed", [StateType.PENDING, StateType.PAUSED])
    def test_only_running_scheduled_cancelling_or_final_states_leave_a_pause(
        self, initialize_orchestration, proposed
    ):
        context = initialize_orchestration(StateType.PAUSED, proposed)
        apply_rules(context, [HandleResumingPausedFlows])
        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details["reason"] == (
            f"This run cannot transition to the {proposed.value} state from the PAUSED state."
        )
        assert context.validated_state.type == StateType.PAUSED

    @pytest.mark.parametrize("proposed", [StateType.RUNNING, *sorted(TERMINAL_STATE_TYPES)])
    def test_a_pause_past_its_timeout_fails_the_run(self, initialize_orchestration, proposed):
        context = initialize_orchestration(
            StateType.PAUSED,
            proposed,
            initial_details={"pause_timeout": timezone.now() - dt.timedelta(seconds=1)},
        )
        apply_rules(context, [HandleResumingPausedFlows])
        assert context.response_status == SetStateStatus.REJECT
        assert (
            context.response_details["reason"] == "The flow run pause has timed out and can no longer resume."
        )
        assert context.written
        assert context.validated_state.type == StateType.FAILED
        assert context.validated_state.message.startswith("The flow was ")
        assert context.validated_state.message.endswith(" and never resumed.")

    def test_a_timed_out_pause_can_still_be_cancelled(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.PAUSED,
            StateType.CANCELLING,
            initial_details={"pause_timeout": timezone.now() - dt.timedelta(seconds=1)},
        )
        apply_rules(context, [HandleResumingPausedFlows])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.validated_state.type == StateType.CANCELLING

    def test_a_suspended_run_without_deployment_cannot_be_rescheduled(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.PAUSED,
            StateType.SCHEDULED,
            initial_name="Suspended",
            initial_details={"pause_reschedule": True},
            proposed_name="Resuming",
        )
        apply_rules(context, [HandleResumingPausedFlows])
        assert context.response_status == SetStateStatus.REJECT
        assert (
            context.response_details["reason"]
            == "Cannot reschedule a resuming flow run without a deployment."
        )

    def test_a_suspended_deployed_run_is_rescheduled_resuming(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.PAUSED,
            StateType.SCHEDULED,
            initial_details={"pause_reschedule": True},
            proposed_name="Resuming",
            deployment_id=uuid.uuid4(),
            empirical_policy={"pause_keys": ["k"]},
        )
        apply_rules(context, [HandleResumingPausedFlows])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.run.empirical_policy == {"pause_keys": ["k"], "resuming": True}

    def test_leaving_a_blocking_pause_for_scheduled_starts_a_new_attempt(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.PAUSED,
            StateType.SCHEDULED,
            empirical_policy={"pause_keys": ["k"], "resuming": True},
        )
        apply_rules(context, [HandleResumingPausedFlows])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.run.empirical_policy == {
            "pause_keys": [],
            "resuming": False,
            "retry_type": "reschedule",
        }

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        transitions = ungoverned(HandleResumingPausedFlows)
        assert all(initial != StateType.PAUSED for initial, _ in transitions)
        assert_rule_ignores(HandleResumingPausedFlows, transitions)
