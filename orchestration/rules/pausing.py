"""Pausing (the process waits) and suspending (the process exits; ``pause_reschedule``)."""

from __future__ import annotations

import uuid

from django.utils import timezone

from orchestration.models import FlowRunState
from orchestration.models.states import StateType
from orchestration.rules.base import (
    ALL_ORCHESTRATION_STATES,
    BaseOrchestrationRule,
    OrchestrationContext,
    is_final,
    new_state,
)
from orchestration.schemas.states import StateCreate


def _verb(state: StateCreate) -> str:
    return "suspend" if state.name == "Suspended" else "pause"


class HandlePausingFlows(BaseOrchestrationRule):
    """Only a RUNNING run can be paused; each ``pause_key`` fires once per attempt (it is recorded
    in ``empirical_policy.pause_keys``); suspending (``pause_reschedule``) needs a deployment and
    is not possible for subflows."""

    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = frozenset({StateType.PAUSED})

    key: str | None = None

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if proposed_state is None:
            return
        verb = _verb(proposed_state)
        if initial_state is None:
            self.abort_transition(f"Cannot {verb} flows with no state.")
            return
        if initial_state.type != StateType.RUNNING:
            self.reject_transition(state=None, reason=f"Cannot {verb} flows that are not currently running.")
            return

        self.key = proposed_state.state_details.pause_key or str(uuid.uuid4())
        if self.key in (context.run_settings.pause_keys or []):
            self.reject_transition(state=None, reason=f"This {verb} has already fired.")
            return

        if proposed_state.state_details.pause_reschedule:
            if context.run.parent_task_run_id:
                self.abort_transition(reason=f"Cannot {verb} subflows.")
                return
            if context.run.deployment_id is None:
                self.abort_transition(reason=f"Cannot {verb} flows without a deployment.")
                return

    def after_transition(
        self,
        initial_state: FlowRunState | None,
        validated_state: FlowRunState | None,
        context: OrchestrationContext,
    ) -> None:
        # As Prefect does, the key is recorded whenever it was determined (even when the pause is
        # then refused); a refusal before that point records nothing.
        if self.key is None:
            return
        pause_keys = list(context.run_settings.pause_keys or [])
        if self.key not in pause_keys:
            pause_keys.append(self.key)
        context.update_run_policy(pause_keys=pause_keys)


class HandleResumingPausedFlows(BaseOrchestrationRule):
    """A PAUSED run may only go to RUNNING, SCHEDULED, CANCELLING or a final state. A suspended
    run can only be rescheduled through its deployment; a pause past its ``pause_timeout`` fails
    the run instead. On the way out the run is marked ``resuming`` (so the next RUNNING does not
    count as a new attempt), unless a blocking pause is left for SCHEDULED: that is a new attempt,
    and the pause metadata is reset."""

    FROM_STATES = frozenset({StateType.PAUSED})
    TO_STATES = ALL_ORCHESTRATION_STATES

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or proposed_state is None:
            return
        if not (
            proposed_state.type in {StateType.RUNNING, StateType.SCHEDULED, StateType.CANCELLING}
            or is_final(proposed_state.type)
        ):
            self.reject_transition(
                state=None,
                reason=(
                    f"This run cannot transition to the {StateType(proposed_state.type).value} state"
                    f" from the {initial_state.type} state."
                ),
            )
            return

        verb = _verb(proposed_state)
        display_name = (
            proposed_state.name.lower()
            if proposed_state.name
            else StateType(proposed_state.type).value.lower()
        )
        if context.initial_details.pause_reschedule and not context.run.deployment_id:
            self.reject_transition(
                state=None, reason=f"Cannot reschedule a {display_name} flow run without a deployment."
            )
            return

        if proposed_state.type == StateType.CANCELLING:
            # A blocking pause keeps the process alive: cancellation must reach it even after the
            # pause deadline.
            return

        pause_timeout = context.initial_details.pause_timeout
        if pause_timeout and pause_timeout < timezone.now():
            self.reject_transition(
                state=new_state(StateType.FAILED, message=f"The flow was {display_name} and never resumed."),
                reason=f"The flow run {verb} has timed out and can no longer resume.",
            )

    def after_transition(
        self,
        initial_state: FlowRunState | None,
        validated_state: FlowRunState | None,
        context: OrchestrationContext,
    ) -> None:
        if (
            initial_state is not None
            and not context.initial_details.pause_reschedule
            and validated_state is not None
            and validated_state.type == StateType.SCHEDULED
        ):
            context.update_run_policy(resuming=False, pause_keys=[], retry_type="reschedule")
        else:
            context.update_run_policy(resuming=True)
