"""Run input of a pause (Prefect's ``HandlePausingFlows.after_transition``, second half)."""

from __future__ import annotations

from orchestration.models import FlowRunInput, FlowRunState
from orchestration.models.states import StateType
from orchestration.rules.base import (
    ALL_ORCHESTRATION_STATES,
    BaseOrchestrationRule,
    OrchestrationContext,
    state_details_of,
)


class ClearStaleRunInput(BaseOrchestrationRule):
    """A pause that is accepted has not fired on this attempt, so input stored under its keyset
    (the schema, the description, a response) belongs to an earlier attempt and must not be
    reused: it is deleted. Entered right after ``HandlePausingFlows``."""

    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = frozenset({StateType.PAUSED})

    def after_transition(
        self,
        initial_state: FlowRunState | None,
        validated_state: FlowRunState | None,
        context: OrchestrationContext,
    ) -> None:
        if validated_state is None or validated_state.type != StateType.PAUSED:
            return
        keyset = state_details_of(validated_state).run_input_keyset
        if keyset:
            FlowRunInput.objects.filter(flow_run_id=context.run.id, key__in=list(keyset.values())).delete()
