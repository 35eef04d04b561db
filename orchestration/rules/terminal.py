"""Rules that protect terminal states and repeated transitions."""

from __future__ import annotations

from typing import Any

from orchestration.models import FlowRunState
from orchestration.models.states import StateType
from orchestration.rules.base import (
    ALL_ORCHESTRATION_STATES,
    TERMINAL_STATES,
    BaseOrchestrationRule,
    OrchestrationContext,
    has_persisted_result,
    is_final,
)
from orchestration.schemas.states import StateCreate

OVERWRITE_RESULT_REASON = (
    "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not."
)


def _discards_persisted_result(initial_state: FlowRunState, proposed_state: StateCreate) -> bool:
    """COMPLETED with a persisted result → COMPLETED without one."""
    return (
        initial_state.type == StateType.COMPLETED
        and proposed_state.type == StateType.COMPLETED
        and bool(initial_state.data)
        and has_persisted_result(initial_state.data)
        and not has_persisted_result(proposed_state.data)
    )


class PreventDuplicateTransitions(BaseOrchestrationRule):
    """A proposal carrying the ``transition_id`` of the current state is a retried request for a
    transition already made: reject it and report the current state."""

    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = ALL_ORCHESTRATION_STATES

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or proposed_state is None:
            return
        initial_id = context.initial_details.transition_id
        proposed_id = proposed_state.state_details.transition_id
        if initial_id is not None and proposed_id is not None and initial_id == proposed_id:
            self.reject_transition(state=None, reason="This run has already made this state transition.")


class HandleFlowTerminalStateTransitions(BaseOrchestrationRule):
    """Runs do not leave terminal states when:

    * going to CANCELLING, PAUSED or CRASHED (abort);
    * the run COMPLETED with a persisted result and a non-final state is proposed (reject), or a
      COMPLETED state without a persisted result would replace it (reject);
    * going to SCHEDULED without a deployment (abort).

    Leaving a terminal state for a non-final one (a manual retry) resets the pause metadata.
    """

    FROM_STATES = TERMINAL_STATES
    TO_STATES = ALL_ORCHESTRATION_STATES

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or proposed_state is None:
            return
        self.original_policy: dict[str, Any] = dict(context.run.empirical_policy or {})

        if proposed_state.type in {StateType.CANCELLING, StateType.PAUSED, StateType.CRASHED}:
            self.abort_transition(f"Run is already in terminal state {initial_state.type}.")
            return

        if (
            initial_state.type == StateType.COMPLETED
            and not is_final(proposed_state.type)
            and initial_state.data
            and has_persisted_result(initial_state.data)
        ):
            self.reject_transition(None, "Run is already COMPLETED.")
            return

        if _discards_persisted_result(initial_state, proposed_state):
            self.reject_transition(None, OVERWRITE_RESULT_REASON)
            return

        if proposed_state.type == StateType.SCHEDULED and not context.run.deployment_id:
            self.abort_transition("Cannot reschedule a run without an associated deployment.")
            return

        if not is_final(proposed_state.type):
            context.update_run_policy(
                resuming=False,
                pause_keys=[],
                retry_type="reschedule" if proposed_state.type == StateType.SCHEDULED else None,
            )

    def cleanup(
        self,
        initial_state: FlowRunState | None,
        validated_state: FlowRunState | None,
        context: OrchestrationContext,
    ) -> None:
        context.run.empirical_policy = self.original_policy


class PreventResultDataLoss(BaseOrchestrationRule):
    """The part of the terminal-state rule that still applies with ``force=True``: a COMPLETED
    state carrying a persisted result is not replaced by one without."""

    FROM_STATES = TERMINAL_STATES
    TO_STATES = TERMINAL_STATES

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or proposed_state is None:
            return
        if _discards_persisted_result(initial_state, proposed_state):
            self.reject_transition(None, OVERWRITE_RESULT_REASON)
