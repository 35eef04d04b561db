from __future__ import annotations

import uuid

import pytest

from orchestration.models.states import TERMINAL_STATE_TYPES, StateType
from orchestration.rules.base import BaseOrchestrationRule, SetStateStatus, apply_rules
from orchestration.rules.terminal import (
    HandleFlowTerminalStateTransitions,
    PreventDuplicateTransitions,
    PreventResultDataLoss,
)
from tests.orchestration.rules.conftest import ALL_TRANSITIONS, ungoverned

pytestmark = pytest.mark.django_db

TERMINAL = sorted(TERMINAL_STATE_TYPES)
PERSISTED = {"storage_key": "/results/abc", "serializer": {"type": "pickle"}, "storage_block_id": None}
DIFFERENT_POLICY = {"retries": 0, "resuming": True, "pause_keys": ["k"], "retry_type": "in_process"}


class RejectEverything(BaseOrchestrationRule):
    """A rule that changes the outcome, to make earlier rules fizzle."""

    FROM_STATES = frozenset(TERMINAL_STATE_TYPES)
    TO_STATES = frozenset(StateType)

    def before_transition(self, initial_state, proposed_state, context) -> None:
        self.reject_transition(None, "no")


class TestPreventDuplicateTransitions:
    def test_rejects_a_repeated_transition_id_keeping_the_current_state(self, initialize_orchestration):
        transition_id = uuid.uuid4()
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.RUNNING,
            initial_details={"transition_id": transition_id},
            proposed_details={"transition_id": transition_id},
        )
        current = context.initial_state

        apply_rules(context, [PreventDuplicateTransitions])

        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details == {
            "type": "reject_details",
            "reason": "This run has already made this state transition.",
        }
        assert context.proposed_state is None
        assert context.validated_state == current
        assert not context.written

    @pytest.mark.parametrize(
        ("initial_id", "proposed_id"),
        [(uuid.uuid4(), uuid.uuid4()), (None, uuid.uuid4()), (uuid.uuid4(), None), (None, None)],
    )
    def test_does_not_fire_for_new_or_missing_transition_ids(
        self, initialize_orchestration, initial_id, proposed_id
    ):
        context = initialize_orchestration(
            StateType.PENDING,
            StateType.RUNNING,
            initial_details={"transition_id": initial_id},
            proposed_details={"transition_id": proposed_id},
        )
        apply_rules(context, [PreventDuplicateTransitions])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.written

    def test_does_not_fire_for_a_run_without_state(self, initialize_orchestration):
        context = initialize_orchestration(
            None, StateType.PENDING, proposed_details={"transition_id": uuid.uuid4()}
        )
        apply_rules(context, [PreventDuplicateTransitions])
        assert context.response_status == SetStateStatus.ACCEPT

    def test_governs_every_transition(self):
        assert ungoverned(PreventDuplicateTransitions) == []


class TestHandleFlowTerminalStateTransitions:
    @pytest.mark.parametrize("initial", TERMINAL)
    @pytest.mark.parametrize("proposed", [StateType.CANCELLING, StateType.PAUSED, StateType.CRASHED])
    def test_aborts_crashing_pausing_or_cancelling_a_terminal_run(
        self, initialize_orchestration, initial, proposed
    ):
        context = initialize_orchestration(initial, proposed)
        apply_rules(context, [HandleFlowTerminalStateTransitions])
        assert context.response_status == SetStateStatus.ABORT
        assert context.response_details == {
            "type": "abort_details",
            "reason": f"Run is already in terminal state {initial.value}.",
        }
        assert context.validated_state == context.initial_state
        assert not context.written

    @pytest.mark.parametrize("proposed", [StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED])
    def test_rejects_leaving_completed_with_a_persisted_result(self, initialize_orchestration, proposed):
        context = initialize_orchestration(StateType.COMPLETED, proposed, initial_data=PERSISTED)
        apply_rules(context, [HandleFlowTerminalStateTransitions])
        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details["reason"] == "Run is already COMPLETED."
        assert context.validated_state == context.initial_state

    def test_rejects_overwriting_a_persisted_result(self, initialize_orchestration):
        context = initialize_orchestration(StateType.COMPLETED, StateType.COMPLETED, initial_data=PERSISTED)
        apply_rules(context, [HandleFlowTerminalStateTransitions])
        assert context.response_status == SetStateStatus.REJECT
        assert "persisted result" in context.response_details["reason"]

    def test_allows_completed_to_completed_keeping_a_persisted_result(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.COMPLETED, StateType.COMPLETED, initial_data=PERSISTED, proposed_data=PERSISTED
        )
        apply_rules(context, [HandleFlowTerminalStateTransitions])
        assert context.response_status == SetStateStatus.ACCEPT

    @pytest.mark.parametrize("initial", TERMINAL)
    def test_allows_a_manual_retry_and_resets_pause_metadata(self, initialize_orchestration, initial):
        context = initialize_orchestration(
            initial,
            StateType.RUNNING,
            initial_data={"type": "unpersisted"},
            empirical_policy=DIFFERENT_POLICY,
        )
        apply_rules(context, [HandleFlowTerminalStateTransitions])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.written
        policy = context.run.empirical_policy
        assert (policy["resuming"], policy["pause_keys"], policy["retry_type"]) == (False, [], None)
        assert policy["retries"] == 0

    @pytest.mark.parametrize("initial", TERMINAL)
    def test_aborts_rescheduling_without_a_deployment(self, initialize_orchestration, initial):
        context = initialize_orchestration(initial, StateType.SCHEDULED)
        apply_rules(context, [HandleFlowTerminalStateTransitions])
        assert context.response_status == SetStateStatus.ABORT
        assert (
            context.response_details["reason"] == "Cannot reschedule a run without an associated deployment."
        )

    def test_allows_rescheduling_a_deployed_run(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.FAILED,
            StateType.SCHEDULED,
            deployment_id=uuid.uuid4(),
            empirical_policy=DIFFERENT_POLICY,
        )
        apply_rules(context, [HandleFlowTerminalStateTransitions])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.run.empirical_policy["retry_type"] == "reschedule"
        assert context.run.empirical_policy["pause_keys"] == []

    @pytest.mark.parametrize("initial", TERMINAL)
    @pytest.mark.parametrize("proposed", [StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED])
    def test_allows_terminal_to_terminal_without_touching_the_policy(
        self, initialize_orchestration, initial, proposed
    ):
        context = initialize_orchestration(initial, proposed, empirical_policy=DIFFERENT_POLICY)
        apply_rules(context, [HandleFlowTerminalStateTransitions])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.run.empirical_policy == DIFFERENT_POLICY

    def test_cleanup_restores_the_policy_when_another_rule_changes_the_outcome(
        self, initialize_orchestration
    ):
        context = initialize_orchestration(
            StateType.FAILED, StateType.RUNNING, empirical_policy=DIFFERENT_POLICY
        )
        apply_rules(context, [HandleFlowTerminalStateTransitions, RejectEverything])
        assert context.response_status == SetStateStatus.REJECT
        assert context.run.empirical_policy == DIFFERENT_POLICY
        assert "HandleFlowTerminalStateTransitions" not in context.finalization_signature

    def test_does_not_fire_for_non_terminal_initial_states(self, assert_rule_ignores):
        transitions = ungoverned(HandleFlowTerminalStateTransitions)
        assert {initial for initial, _ in transitions} == {None} | (set(StateType) - TERMINAL_STATE_TYPES)
        assert_rule_ignores(HandleFlowTerminalStateTransitions, transitions)


class TestPreventResultDataLoss:
    def test_rejects_overwriting_a_persisted_result(self, initialize_orchestration):
        context = initialize_orchestration(StateType.COMPLETED, StateType.COMPLETED, initial_data=PERSISTED)
        apply_rules(context, [PreventResultDataLoss])
        assert context.response_status == SetStateStatus.REJECT
        assert context.validated_state == context.initial_state

    def test_allows_other_terminal_transitions(self, initialize_orchestration):
        for proposed in (StateType.FAILED, StateType.CANCELLED, StateType.CRASHED):
            context = initialize_orchestration(StateType.COMPLETED, proposed, initial_data=PERSISTED)
            apply_rules(context, [PreventResultDataLoss])
            assert context.response_status == SetStateStatus.ACCEPT

    def test_does_not_fire_outside_terminal_to_terminal(self, assert_rule_ignores):
        transitions = ungoverned(PreventResultDataLoss)
        assert len(transitions) == len(ALL_TRANSITIONS) - len(TERMINAL) ** 2
        assert_rule_ignores(PreventResultDataLoss, transitions)
