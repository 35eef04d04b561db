from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from orchestration.models.states import StateType
from orchestration.rules.base import SetStateStatus, apply_rules
from orchestration.rules.retries import RetryFailedFlows
from tests.orchestration.rules.conftest import ungoverned

pytestmark = pytest.mark.django_db

RESULT = {"storage_key": "/results/failure", "serializer": {"type": "pickle"}}


def policy(retries, retry_delay=None, **extra):
    return {"retries": retries, "retry_delay": retry_delay, "pause_keys": ["p"], "resuming": True, **extra}


class TestRetryFailedFlows:
    def test_a_failure_with_retries_left_becomes_awaiting_retry(self, initialize_orchestration):
        lease = uuid.uuid4()
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.FAILED,
            proposed_message="Flow run encountered an exception: ValueError",
            proposed_data=RESULT,
            initial_details={"deployment_concurrency_lease_id": lease},
            empirical_policy=policy(retries=2, retry_delay=30),
            run_count=1,
        )
        before = timezone.now()
        apply_rules(context, [RetryFailedFlows])
        after = timezone.now()

        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details == {"type": "reject_details", "reason": "Retrying"}
        assert context.written
        state = context.validated_state
        assert (state.type, state.name) == ("SCHEDULED", "AwaitingRetry")
        assert state.message == "Flow run encountered an exception: ValueError"
        assert state.data == RESULT
        scheduled = context.proposed_state.state_details.scheduled_time
        assert before + dt.timedelta(seconds=30) <= scheduled <= after + dt.timedelta(seconds=30)
        assert state.state_details["deployment_concurrency_lease_id"] == str(lease)
        assert context.run.empirical_policy == {
            "retries": 2,
            "retry_delay": 30,
            "pause_keys": [],
            "resuming": False,
            "retry_type": "in_process",
        }

    def test_the_last_allowed_attempt_still_retries(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING, StateType.FAILED, empirical_policy=policy(retries=1), run_count=1
        )
        apply_rules(context, [RetryFailedFlows])
        assert context.response_status == SetStateStatus.REJECT
        scheduled = context.proposed_state.state_details.scheduled_time
        assert abs((scheduled - timezone.now()).total_seconds()) < 5

    def test_a_failure_without_retries_left_is_accepted_and_clears_retry_type(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.FAILED,
            empirical_policy=policy(retries=1, retry_type="in_process"),
            run_count=2,
        )
        apply_rules(context, [RetryFailedFlows])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.validated_state.type == StateType.FAILED
        assert context.run.empirical_policy["retry_type"] is None
        assert context.run.empirical_policy["pause_keys"] == ["p"]

    def test_a_run_without_retries_fails(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING, StateType.FAILED, empirical_policy={"retries": None}, run_count=1
        )
        apply_rules(context, [RetryFailedFlows])
        assert context.response_status == SetStateStatus.ACCEPT

    def test_deprecated_policy_fields_still_retry(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.FAILED,
            empirical_policy={
                "max_retries": 1,
                "retry_delay_seconds": 60,
                "retries": None,
                "retry_delay": None,
            },
            run_count=1,
        )
        apply_rules(context, [RetryFailedFlows])
        assert context.response_status == SetStateStatus.REJECT
        delay = context.proposed_state.state_details.scheduled_time - timezone.now()
        assert 55 < delay.total_seconds() <= 60

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        transitions = ungoverned(RetryFailedFlows)
        assert (StateType.PENDING, StateType.FAILED) in transitions
        assert (StateType.RUNNING, StateType.CRASHED) in transitions
        assert_rule_ignores(RetryFailedFlows, transitions)
