from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from orchestration.models.states import StateType
from orchestration.rules.base import SetStateStatus, apply_rules
from orchestration.rules.pending import PreventPendingTransitions
from tests.orchestration.rules.conftest import ungoverned

pytestmark = pytest.mark.django_db


class TestPreventPendingTransitions:
    @pytest.mark.parametrize(
        "initial", [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING, StateType.CANCELLED]
    )
    def test_aborts_a_second_claim(self, initialize_orchestration, initial):
        context = initialize_orchestration(initial, StateType.PENDING)
        apply_rules(context, [PreventPendingTransitions])
        assert context.response_status == SetStateStatus.ABORT
        assert context.response_details == {
            "type": "abort_details",
            "reason": f"This run is in a {initial.value} state and cannot transition to a PENDING state.",
        }
        assert context.validated_state == context.initial_state
        assert not context.written

    def test_allows_moving_on_to_a_named_pending_sub_state(self, initialize_orchestration):
        scheduled = timezone.now() - dt.timedelta(minutes=1)
        lease = uuid.uuid4()
        context = initialize_orchestration(
            StateType.PENDING,
            StateType.PENDING,
            proposed_name="Submitting",
            initial_details={"scheduled_time": scheduled, "deployment_concurrency_lease_id": lease},
        )
        apply_rules(context, [PreventPendingTransitions])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.validated_state.name == "Submitting"
        assert context.proposed_state.state_details.scheduled_time == scheduled
        assert context.proposed_state.state_details.deployment_concurrency_lease_id == lease

    @pytest.mark.parametrize(
        ("initial_name", "proposed_name"),
        [("Pending", "Pending"), ("Submitting", "Pending"), ("Submitting", "Submitting")],
    )
    def test_aborts_going_back_to_pending_or_repeating_a_sub_state(
        self, initialize_orchestration, initial_name, proposed_name
    ):
        context = initialize_orchestration(
            StateType.PENDING, StateType.PENDING, initial_name=initial_name, proposed_name=proposed_name
        )
        apply_rules(context, [PreventPendingTransitions])
        assert context.response_status == SetStateStatus.ABORT

    @pytest.mark.parametrize("initial", [StateType.RUNNING, StateType.CANCELLED])
    def test_a_named_sub_state_does_not_escape_from_other_states(self, initialize_orchestration, initial):
        context = initialize_orchestration(initial, StateType.PENDING, proposed_name="Submitting")
        apply_rules(context, [PreventPendingTransitions])
        assert context.response_status == SetStateStatus.ABORT

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        transitions = ungoverned(PreventPendingTransitions)
        # Claiming a new, scheduled, paused or finished run is allowed.
        for initial in (None, StateType.SCHEDULED, StateType.PAUSED, StateType.COMPLETED, StateType.FAILED):
            assert (initial, StateType.PENDING) in transitions
        assert_rule_ignores(PreventPendingTransitions, transitions)
