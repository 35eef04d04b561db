"""Universal transforms: bookkeeping that fires on every transition that writes a state.

They are the innermost contexts (``GlobalFlowPolicy`` is entered after the policy's rules), so
their ``before_transition`` sees the proposal every rule has agreed on, and they only record: none
changes the outcome of a transition.
"""

from __future__ import annotations

import datetime as dt

from orchestration.models.states import StateType
from orchestration.rules.base import BaseUniversalTransform, OrchestrationContext, is_final


class PreserveDeploymentConcurrencyLeaseId(BaseUniversalTransform):
    """Workers send ``deployment_concurrency_lease_id: null``; keep the current state's lease."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if context.initial_state is None or proposal is None:
            return
        lease_id = context.initial_details.deployment_concurrency_lease_id
        details = proposal.state_details
        if lease_id is not None and details.deployment_concurrency_lease_id is None:
            details.deployment_concurrency_lease_id = lease_id


class EnsureFlowRunStateTimestampIsUnique(BaseUniversalTransform):
    """Two states of a run never share a timestamp (coarse clocks): move the proposal on by a
    microsecond until it is free. Runs before the transforms that read the timestamp."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None or proposal.timestamp is None:
            return
        candidate = proposal.timestamp
        current = context.initial_state
        if current is None or candidate > current.timestamp:
            # Later than the current state (the usual case) or the first state: nothing to look up.
            # (A history written out of order could still hold this instant; the history is then
            # ordered by the states' creation, as it is for equal timestamps elsewhere.)
            return
        while context.run.states.filter(timestamp=candidate).exists():
            candidate += dt.timedelta(microseconds=1)
        proposal.timestamp = candidate


class SetRunStateType(BaseUniversalTransform):
    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        context.run.state_type = StateType(proposal.type).value


class SetRunStateName(BaseUniversalTransform):
    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        context.run.state_name = proposal.name


class SetRunStateTimestamp(BaseUniversalTransform):
    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        context.run.state_timestamp = proposal.timestamp


class SetStartTime(BaseUniversalTransform):
    """The first time the run enters RUNNING."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        if proposal.type == StateType.RUNNING and context.run.start_time is None:
            context.run.start_time = proposal.timestamp


class SetEndTime(BaseUniversalTransform):
    """Entering a final state sets ``end_time`` (and ``start_time`` when the run never ran);
    leaving a final state for a non-final one clears it."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        if is_final(context.initial_state_type) and not is_final(proposal.type):
            context.run.end_time = None
        if is_final(proposal.type) and not context.run.end_time:
            if not context.run.start_time:
                context.run.start_time = proposal.timestamp
            context.run.end_time = proposal.timestamp


class IncrementRunTime(BaseUniversalTransform):
    """Leaving RUNNING adds the time spent in it to ``total_run_time`` (seconds)."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        initial = context.initial_state
        if initial is not None and initial.type == StateType.RUNNING:
            spent = proposal.timestamp - initial.timestamp
            context.run.total_run_time = (context.run.total_run_time or 0.0) + spent.total_seconds()


class SetExpectedStartTime(BaseUniversalTransform):
    """Set once: the scheduled time of a first SCHEDULED state, else the first state's time."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None or context.run.expected_start_time:
            return
        if proposal.type == StateType.SCHEDULED:
            context.run.expected_start_time = proposal.state_details.scheduled_time
        else:
            context.run.expected_start_time = proposal.timestamp


class SetNextScheduledStartTime(BaseUniversalTransform):
    """Entering SCHEDULED records its scheduled time; leaving SCHEDULED clears it."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        if context.initial_state_type == StateType.SCHEDULED:
            context.run.next_scheduled_start_time = None
        if proposal.type == StateType.SCHEDULED:
            context.run.next_scheduled_start_time = proposal.state_details.scheduled_time


class UpdateStateDetails(BaseUniversalTransform):
    """A state names the run it belongs to."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        proposal.state_details.flow_run_id = context.run.id


class UpdateSubflowStateDetails(BaseUniversalTransform):
    """A subflow's states name the parent task run that tracks it."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        if context.run.parent_task_run_id is not None:
            proposal.state_details.task_run_id = context.run.parent_task_run_id


class IncrementFlowRunCount(BaseUniversalTransform):
    """Entering RUNNING counts an attempt, except when resuming from a pause."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        if proposal.type == StateType.RUNNING:
            if context.run_settings.resuming:
                return
            context.run.run_count += 1


class RemoveResumingIndicator(BaseUniversalTransform):
    """Once the run is RUNNING again (or final), it is no longer resuming."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        if (proposal.type == StateType.RUNNING or is_final(proposal.type)) and context.run_settings.resuming:
            context.update_run_policy(resuming=False)
