"""Cancellation: CANCELLING only ends in CANCELLED, and runs with nothing to tear down skip it."""

from __future__ import annotations

from orchestration.models import FlowRunState
from orchestration.models.states import StateType
from orchestration.rules.base import (
    ALL_ORCHESTRATION_STATES,
    BaseOrchestrationRule,
    OrchestrationContext,
    new_state,
)
from orchestration.schemas.states import StateCreate


class EnforceCancellingToCancelledTransition(BaseOrchestrationRule):
    """A CANCELLING run may only become CANCELLED (``force=True`` bypasses this, as the runner and
    worker do once they have killed the process)."""

    FROM_STATES = frozenset({StateType.CANCELLING})
    TO_STATES = ALL_ORCHESTRATION_STATES - {StateType.CANCELLED}

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        self.reject_transition(
            state=None,
            reason="Cannot transition flows that are cancelling to a state other than Cancelled.",
        )


class BypassCancellingFlowRunsWithNoInfra(BaseOrchestrationRule):
    """CANCELLING exists so a worker tears down infrastructure. A SCHEDULED run without an
    infrastructure pid (or one that is "Resuming"), or a suspended PAUSED run (its process has
    exited), has none: it becomes CANCELLED at once (a REJECT into Cancelled)."""

    FROM_STATES = frozenset({StateType.SCHEDULED, StateType.PAUSED})
    TO_STATES = frozenset({StateType.CANCELLING})

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or proposed_state is None:
            return
        if (
            initial_state.type == StateType.SCHEDULED and not context.run.infrastructure_pid
        ) or initial_state.name == "Resuming":
            self.reject_transition(
                state=new_state(StateType.CANCELLED),
                reason="Scheduled flow run has no infrastructure to terminate.",
            )
        elif initial_state.type == StateType.PAUSED and context.initial_details.pause_reschedule:
            self.reject_transition(
                state=new_state(StateType.CANCELLED),
                reason="Suspended flow run has no infrastructure to terminate.",
            )
