from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from django.utils import timezone

from orchestration.models.states import StateType
from orchestration.rules import scheduling
from orchestration.rules.base import SetStateStatus, apply_rules
from orchestration.rules.scheduling import (
    CopyScheduledTime,
    EnsureOnlyScheduledFlowsMarkedLate,
    WaitForScheduledTime,
)
from tests.orchestration.rules.conftest import ungoverned

pytestmark = pytest.mark.django_db


class TestCopyScheduledTime:
    def test_copies_the_scheduled_time_to_the_pending_state(self, initialize_orchestration):
        scheduled = timezone.now() - dt.timedelta(minutes=3)
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.PENDING, initial_details={"scheduled_time": scheduled}
        )
        apply_rules(context, [CopyScheduledTime])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.validated_state.state_details["scheduled_time"] is not None
        assert context.proposed_state.state_details.scheduled_time == scheduled

    def test_keeps_a_scheduled_time_the_proposal_names(self, initialize_orchestration):
        own = timezone.now() + dt.timedelta(hours=1)
        context = initialize_orchestration(
            StateType.SCHEDULED,
            StateType.PENDING,
            initial_details={"scheduled_time": timezone.now()},
            proposed_details={"scheduled_time": own},
        )
        apply_rules(context, [CopyScheduledTime])
        assert context.proposed_state.state_details.scheduled_time == own

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        transitions = ungoverned(CopyScheduledTime)
        assert len(transitions) == 89
        assert_rule_ignores(CopyScheduledTime, transitions)


class TestWaitForScheduledTime:
    @pytest.mark.parametrize("initial", [StateType.SCHEDULED, StateType.PENDING])
    def test_waits_until_the_scheduled_time(self, initialize_orchestration, initial):
        context = initialize_orchestration(
            initial,
            StateType.RUNNING,
            initial_details={"scheduled_time": timezone.now() + dt.timedelta(seconds=10)},
        )
        current = context.initial_state
        apply_rules(context, [WaitForScheduledTime])
        assert context.response_status == SetStateStatus.WAIT
        details = context.response_details
        assert details["type"] == "wait_details"
        assert isinstance(details["delay_seconds"], int)
        assert details["delay_seconds"] in (9, 10)
        assert details["reason"] == "Scheduled time is in the future"
        assert context.validated_state == current
        assert not context.written

    def test_rounds_the_delay_to_whole_seconds(self, initialize_orchestration, monkeypatch):
        now = timezone.now()
        context = initialize_orchestration(
            StateType.SCHEDULED,
            StateType.RUNNING,
            initial_details={"scheduled_time": now + dt.timedelta(seconds=2, milliseconds=600)},
        )
        monkeypatch.setattr(scheduling, "timezone", SimpleNamespace(now=lambda: now))
        apply_rules(context, [WaitForScheduledTime])
        assert context.response_details["delay_seconds"] == 3

    def test_a_sub_second_delay_that_rounds_to_zero_is_accepted(self, initialize_orchestration, monkeypatch):
        now = timezone.now()
        context = initialize_orchestration(
            StateType.SCHEDULED,
            StateType.RUNNING,
            initial_details={"scheduled_time": now + dt.timedelta(milliseconds=300)},
        )
        monkeypatch.setattr(scheduling, "timezone", SimpleNamespace(now=lambda: now))
        apply_rules(context, [WaitForScheduledTime])
        assert context.response_status == SetStateStatus.ACCEPT

    def test_accepts_once_the_scheduled_time_has_passed(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.RUNNING, initial_details={"scheduled_time": timezone.now()}
        )
        apply_rules(context, [WaitForScheduledTime])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.written

    def test_accepts_a_pending_state_without_scheduled_time(self, initialize_orchestration):
        context = initialize_orchestration(StateType.PENDING, StateType.RUNNING)
        apply_rules(context, [WaitForScheduledTime])
        assert context.response_status == SetStateStatus.ACCEPT

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        transitions = ungoverned(WaitForScheduledTime)
        assert (StateType.PAUSED, StateType.RUNNING) in transitions
        assert_rule_ignores(WaitForScheduledTime, transitions)


class TestEnsureOnlyScheduledFlowsMarkedLate:
    def test_marks_a_scheduled_run_late(self, initialize_orchestration):
        context = initialize_orchestration(StateType.SCHEDULED, StateType.SCHEDULED, proposed_name="Late")
        apply_rules(context, [EnsureOnlyScheduledFlowsMarkedLate])
        assert context.response_status == SetStateStatus.ACCEPT
        assert context.validated_state.name == "Late"

    def test_rejects_marking_a_late_run_late_again(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.SCHEDULED, initial_name="Late", proposed_name="Late"
        )
        apply_rules(context, [EnsureOnlyScheduledFlowsMarkedLate])
        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details["reason"] == "This flow run is already marked late."

    @pytest.mark.parametrize("initial", [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED])
    def test_rejects_marking_other_runs_late(self, initialize_orchestration, initial):
        context = initialize_orchestration(initial, StateType.SCHEDULED, proposed_name="Late")
        apply_rules(context, [EnsureOnlyScheduledFlowsMarkedLate])
        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details["reason"] == "Only scheduled flows can be marked late."

    def test_other_scheduled_states_pass(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING, StateType.SCHEDULED, proposed_name="AwaitingRetry"
        )
        apply_rules(context, [EnsureOnlyScheduledFlowsMarkedLate])
        assert context.response_status == SetStateStatus.ACCEPT

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        assert_rule_ignores(
            EnsureOnlyScheduledFlowsMarkedLate, ungoverned(EnsureOnlyScheduledFlowsMarkedLate)
        )
