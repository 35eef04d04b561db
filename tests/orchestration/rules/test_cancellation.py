from __future__ import annotations

import uuid

import pytest

from orchestration.models.states import StateType
from orchestration.rules.base import SetStateStatus, apply_rules
from orchestration.rules.cancellation import (
    BypassCancellingFlowRunsWithNoInfra,
    EnforceCancellingToCancelledTransition,
)
from tests.orchestration.rules.conftest import ungoverned

pytestmark = pytest.mark.django_db


class TestEnforceCancellingToCancelledTransition:
    @pytest.mark.parametrize("proposed", sorted(set(StateType) - {StateType.CANCELLED}))
    def test_rejects_anything_but_cancelled(self, initialize_orchestration, proposed):
        context = initialize_orchestration(StateType.CANCELLING, proposed)
        apply_rules(context, [EnforceCancellingToCancelledTransition])
        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details == {
            "type": "reject_details",
            "reason": "Cannot transition flows that are cancelling to a state other than Cancelled.",
        }
        assert context.validated_state == context.initial_state
        assert context.validated_state.type == StateType.CANCELLING
        assert not context.written

    def test_accepts_cancelled(self, initialize_orchestration):
        context = initialize_orchestration(StateType.CANCELLING, StateType.CANCELLED)
        apply_rules(context, [EnforceCancellingToCancelledTransition])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.validated_state.type == StateType.CANCELLED

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        transitions = ungoverned(EnforceCancellingToCancelledTransition)
        assert (StateType.CANCELLING, StateType.CANCELLED) in transitions
        assert_rule_ignores(EnforceCancellingToCancelledTransition, transitions)


class TestBypassCancellingFlowRunsWithNoInfra:
    def test_a_scheduled_run_without_infrastructure_is_cancelled_at_once(self, initialize_orchestration):
        context = initialize_orchestration(StateType.SCHEDULED, StateType.CANCELLING)
        apply_rules(context, [BypassCancellingFlowRunsWithNoInfra])
        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details["reason"] == "Scheduled flow run has no infrastructure to terminate."
        assert context.written
        assert (context.validated_state.type, context.validated_state.name) == ("CANCELLED", "Cancelled")
        assert context.run.state == context.validated_state

    def test_a_scheduled_run_with_infrastructure_goes_through_cancelling(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.CANCELLING, infrastructure_pid="123"
        )
        apply_rules(context, [BypassCancellingFlowRunsWithNoInfra])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.validated_state.type == StateType.CANCELLING

    def test_a_resuming_run_is_cancelled_at_once(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.CANCELLING, initial_name="Resuming", infrastructure_pid="123"
        )
        apply_rules(context, [BypassCancellingFlowRunsWithNoInfra])
        assert context.validated_state.type == StateType.CANCELLED

    def test_a_suspended_run_is_cancelled_at_once(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.PAUSED,
            StateType.CANCELLING,
            initial_name="Suspended",
            initial_details={"pause_reschedule": True},
            deployment_id=uuid.uuid4(),
        )
        apply_rules(context, [BypassCancellingFlowRunsWithNoInfra])
        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details["reason"] == "Suspended flow run has no infrastructure to terminate."
        assert context.validated_state.type == StateType.CANCELLED

    def test_a_blocking_pause_goes_through_cancelling(self, initialize_orchestration):
        context = initialize_orchestration(StateType.PAUSED, StateType.CANCELLING)
        apply_rules(context, [BypassCancellingFlowRunsWithNoInfra])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.validated_state.type == StateType.CANCELLING

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        transitions = ungoverned(BypassCancellingFlowRunsWithNoInfra)
        assert (StateType.RUNNING, StateType.CANCELLING) in transitions
        assert_rule_ignores(BypassCancellingFlowRunsWithNoInfra, transitions)
