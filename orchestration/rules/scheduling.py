"""Scheduled times: carried from SCHEDULED to PENDING, and enforced on the way to RUNNING."""

from __future__ import annotations

import math

from django.utils import timezone

from orchestration.models import FlowRunState
from orchestration.models.states import StateType
from orchestration.rules.base import ALL_ORCHESTRATION_STATES, BaseOrchestrationRule, OrchestrationContext
from orchestration.schemas.states import StateCreate


class EnsureOnlyScheduledFlowsMarkedLate(BaseOrchestrationRule):
    """Only a SCHEDULED run can be marked ``Late``, and only once."""

    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = frozenset({StateType.SCHEDULED})

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or proposed_state is None:
            return
        if proposed_state.type != StateType.SCHEDULED or proposed_state.name != "Late":
            return
        if initial_state.type != StateType.SCHEDULED:
            self.reject_transition(state=None, reason="Only scheduled flows can be marked late.")
        elif initial_state.name == "Late":
            self.reject_transition(state=None, reason="This flow run is already marked late.")


class CopyScheduledTime(BaseOrchestrationRule):
    """SCHEDULED → PENDING keeps the scheduled time, unless the proposal names its own."""

    FROM_STATES = frozenset({StateType.SCHEDULED})
    TO_STATES = frozenset({StateType.PENDING})

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or proposed_state is None:
            return
        if not proposed_state.state_details.scheduled_time:
            proposed_state.state_details.scheduled_time = context.initial_details.scheduled_time


class WaitForScheduledTime(BaseOrchestrationRule):
    """A run does not start before its scheduled time by the server's clock: a RUNNING proposal
    that is too early writes nothing and gets WAIT with a whole number of seconds."""

    FROM_STATES = frozenset({StateType.SCHEDULED, StateType.PENDING})
    TO_STATES = frozenset({StateType.RUNNING})

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or proposed_state is None:
            return
        scheduled_time = context.initial_details.scheduled_time
        if not scheduled_time:
            return
        # The wire type is an integer: whole seconds, rounded as Prefect rounds them.
        delay = scheduled_time - timezone.now()
        delay_seconds = math.floor(delay.total_seconds()) + round(delay.microseconds / 1e6)
        if delay_seconds > 0:
            self.delay_transition(delay_seconds, reason="Scheduled time is in the future")
