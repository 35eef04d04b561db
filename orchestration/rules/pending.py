"""PENDING is how a worker claims a run: a second claim must fail."""

from __future__ import annotations

from orchestration.models import FlowRunState
from orchestration.models.states import StateType
from orchestration.rules.base import BaseOrchestrationRule, OrchestrationContext
from orchestration.schemas.states import StateCreate


class PreventPendingTransitions(BaseOrchestrationRule):
    """Abort transitions into PENDING from PENDING, RUNNING, CANCELLING and CANCELLED, so two
    workers submitting the same run do not both start it (the loser gets ABORT and skips it).
    Re-runs go through SCHEDULED (deployed runs) or straight to RUNNING (ad-hoc runs).

    A PENDING run may move on to another *named* pending sub-state (``Pending`` → ``Submitting``
    → ``InfrastructurePending``), but never back to plain ``Pending``; the sub-state keeps the
    scheduled time and deployment concurrency lease of the state before it.
    """

    FROM_STATES = frozenset({StateType.PENDING, StateType.CANCELLING, StateType.RUNNING, StateType.CANCELLED})
    TO_STATES = frozenset({StateType.PENDING})

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or proposed_state is None:
            return
        if (
            initial_state.type == StateType.PENDING
            and proposed_state.type == StateType.PENDING
            and initial_state.name != proposed_state.name
            and proposed_state.name != "Pending"
        ):
            details = proposed_state.state_details
            details.scheduled_time = context.initial_details.scheduled_time
            details.deployment_concurrency_lease_id = context.initial_details.deployment_concurrency_lease_id
            return
        self.abort_transition(
            reason=f"This run is in a {initial_state.type} state and cannot transition to a PENDING state."
        )
