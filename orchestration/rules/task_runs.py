"""Task-run rules and transforms (Prefect's ``core_policy.py`` task rules and the task parts of
``global_policy.py``). They govern ``set_task_run_state``; the generic rules they share with flow
runs (``PreventPendingTransitions``, ``CopyScheduledTime``, ``WaitForScheduledTime``) live in
their own modules.

Tag-based task concurrency (``SecureTaskConcurrencySlots`` / ``ReleaseTaskConcurrencySlots``) is in
``task_concurrency.py``.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from django.db import transaction
from django.utils import timezone

from orchestration.events import hub
from orchestration.models import TaskRunState
from orchestration.models.states import StateType
from orchestration.rules.base import (
    ALL_ORCHESTRATION_STATES,
    TERMINAL_STATES,
    BaseOrchestrationRule,
    BaseUniversalTransform,
    OrchestrationContext,
    awaiting_retry,
    has_persisted_result,
    is_final,
    new_state,
    state_details_of,
)
from orchestration.rules.task_context import TaskOrchestrationContext
from orchestration.schemas.states import StateCreate, StateDetails

#: Prefect's ``server.tasks.max_cache_key_length`` default.
MAX_CACHE_KEY_LENGTH = 2000
#: How many of the newest states with a cache key are looked at for one that has not expired.
CACHE_CANDIDATES = 20


def _flow_run(context: OrchestrationContext):
    return context.flow_run if isinstance(context, TaskOrchestrationContext) else None


def clamped_poisson_interval(average: float, clamping_factor: float) -> float:
    """Prefect's retry jitter: an exponential sample around ``average``, kept within
    ``average * (1 ± clamping_factor)``."""
    lower = max(0.0, average * (1 - clamping_factor))
    upper = average * (1 + clamping_factor)
    return min(max(random.expovariate(1 / average), lower), upper)  # noqa: S311 (not security)


class CacheInsertion(BaseOrchestrationRule):
    """A COMPLETED state's cache key is bounded. (Cached states are found by
    :class:`CacheRetrieval` among the stored COMPLETED states carrying the key.)"""

    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = frozenset({StateType.COMPLETED})

    def before_transition(self, initial_state, proposed_state, context) -> None:
        if proposed_state is None:
            return
        cache_key = proposed_state.state_details.cache_key
        if cache_key and len(cache_key) > MAX_CACHE_KEY_LENGTH:
            self.reject_transition(
                state=proposed_state,
                reason=f"Cache key exceeded maximum allowed length of {MAX_CACHE_KEY_LENGTH} characters.",
            )


class CacheRetrieval(BaseOrchestrationRule):
    """A RUNNING proposal with a cache key (and no ``refresh_cache``) whose key a COMPLETED state
    of this workspace carries, unexpired, is rejected into a ``Cached`` copy of that state."""

    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = frozenset({StateType.RUNNING})

    def before_transition(self, initial_state, proposed_state, context) -> None:
        if proposed_state is None:
            return
        details = proposed_state.state_details
        if not details.cache_key or details.refresh_cache:
            return
        now = timezone.now()
        candidates = (
            TaskRunState.objects.for_workspace(context.run.workspace_id)
            .filter(type=StateType.COMPLETED, state_details__cache_key=details.cache_key)
            .order_by("-timestamp")[:CACHE_CANDIDATES]
        )
        for cached in candidates:
            cached_details = state_details_of(cached)
            if cached_details.cache_expiration is None or cached_details.cache_expiration > now:
                fresh = new_state(
                    StateType.COMPLETED,
                    name="Cached",
                    message=cached.message,
                    data=cached.data,
                    cache_key=cached_details.cache_key,
                    cache_expiration=cached_details.cache_expiration,
                )
                self.reject_transition(state=fresh, reason="Retrieved state from cache")
                return


class HandleTaskTerminalStateTransitions(BaseOrchestrationRule):
    """Task runs do not leave terminal states for CANCELLING, PAUSED or CRASHED (abort), nor leave
    a COMPLETED state with a persisted result (reject). Leaving a terminal state for a non-final one
    resets ``run_count`` (so retries start over); a RUNNING proposal while the flow run retries is
    named ``Retrying``."""

    FROM_STATES = TERMINAL_STATES
    TO_STATES = ALL_ORCHESTRATION_STATES

    def before_transition(self, initial_state, proposed_state, context) -> None:
        if initial_state is None or proposed_state is None:
            return
        self.original_run_count = context.run.run_count
        if proposed_state.type in {StateType.CANCELLING, StateType.PAUSED, StateType.CRASHED}:
            self.abort_transition(f"Run is already {initial_state.type}.")
            return
        if (
            initial_state.type == StateType.COMPLETED
            and initial_state.data
            and has_persisted_result(initial_state.data)
        ):
            self.reject_transition(None, "This run is already completed.")
            return
        if not is_final(proposed_state.type):
            context.run.run_count = 0
        if proposed_state.type == StateType.RUNNING:
            flow_run = _flow_run(context)
            if flow_run is not None and context.run.flow_run_run_count < flow_run.run_count:
                self.rename_state("Retrying")

    def cleanup(self, initial_state, validated_state, context) -> None:
        context.run.run_count = self.original_run_count


class PreventRunningTasksFromStoppedFlows(BaseOrchestrationRule):
    """A task runs only while its flow run runs: a paused flow run turns the proposal into a
    ``NotReady`` PAUSED state; a flow run without a state, or not RUNNING, aborts it."""

    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = frozenset({StateType.RUNNING})

    def before_transition(self, initial_state, proposed_state, context) -> None:
        flow_run = _flow_run(context)
        if flow_run is None:
            return
        reason = "The enclosing flow must be running to begin task execution."
        if flow_run.state is None:
            self.abort_transition(reason=reason)
        elif flow_run.state.type == StateType.PAUSED:
            flow_details = state_details_of(flow_run.state)
            self.reject_transition(
                state=new_state(
                    StateType.PAUSED,
                    name="NotReady",
                    pause_timeout=flow_details.pause_timeout,
                    pause_reschedule=flow_details.pause_reschedule,
                ),
                reason=(f"The flow is paused, new tasks can execute after resuming flow run: {flow_run.id}."),
            )
        elif flow_run.state.type != StateType.RUNNING:
            self.abort_transition(reason=reason)


class RetryFailedTasks(BaseOrchestrationRule):
    """RUNNING → FAILED with retries left (and a retriable failure) becomes ``AwaitingRetry``
    after ``retry_delay`` (the attempt's entry of a list of delays), with jitter if configured."""

    FROM_STATES = frozenset({StateType.RUNNING})
    TO_STATES = frozenset({StateType.FAILED})

    def before_transition(self, initial_state, proposed_state, context) -> None:
        if initial_state is None or proposed_state is None:
            return
        settings = context.run_settings
        run_count = context.run.run_count
        delay: Any = settings.retry_delay
        if isinstance(delay, list):
            base_delay = delay[min(max(run_count - 1, 0), len(delay) - 1)] if delay else 0
        else:
            base_delay = delay or 0
        if settings.retry_jitter_factor and base_delay > 0:
            seconds = clamped_poisson_interval(base_delay, clamping_factor=settings.retry_jitter_factor)
        else:
            seconds = base_delay
        if proposed_state.state_details.retriable is False:
            return
        if settings.retries is not None and run_count <= settings.retries:
            self.reject_transition(
                state=awaiting_retry(
                    scheduled_time=timezone.now() + dt.timedelta(seconds=seconds),
                    message=proposed_state.message,
                    data=proposed_state.data,
                ),
                reason="Retrying",
            )


class RenameReruns(BaseOrchestrationRule):
    """A run that ran before enters RUNNING as ``Retrying`` (after ``AwaitingRetry``) or
    ``Rerunning``."""

    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = frozenset({StateType.RUNNING})

    def before_transition(self, initial_state, proposed_state, context) -> None:
        if initial_state is None or proposed_state is None:
            return
        if context.run.run_count > 0:
            self.rename_state("Retrying" if initial_state.name == "AwaitingRetry" else "Rerunning")


class UpdateFlowRunTrackerOnTasks(BaseOrchestrationRule):
    """Entering RUNNING records which attempt of its flow run the task run belongs to."""

    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = frozenset({StateType.RUNNING})

    def after_transition(self, initial_state, validated_state, context) -> None:
        flow_run = _flow_run(context)
        if flow_run is not None:
            context.run.flow_run_run_count = flow_run.run_count


class CopyTaskParametersID(BaseOrchestrationRule):
    """A background task's parameters id is carried from SCHEDULED to PENDING and RUNNING."""

    FROM_STATES = frozenset({StateType.SCHEDULED, StateType.PENDING})
    TO_STATES = frozenset({StateType.PENDING, StateType.RUNNING})

    def before_transition(self, initial_state, proposed_state, context) -> None:
        if initial_state is None or proposed_state is None:
            return
        if not proposed_state.state_details.task_parameters_id:
            proposed_state.state_details.task_parameters_id = context.initial_details.task_parameters_id


class EnqueueScheduledTasks(BaseOrchestrationRule):
    """A deferred (background) task run that enters SCHEDULED joins its task key's queue: task
    workers subscribed to the key are sent it (``api.task_runs.subscriptions``)."""

    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = frozenset({StateType.SCHEDULED})

    def after_transition(self, initial_state, validated_state, context) -> None:
        if validated_state is None or not state_details_of(validated_state).deferred:
            return
        context.run.delivery_queued_at = validated_state.timestamp
        context.run.delivery_client_id = None
        context.run.delivery_claimed_at = None
        # Subscribed task workers of any process look at once, after the commit makes it claimable.
        workspace_id = context.run.workspace_id
        transaction.on_commit(lambda: hub.wake(workspace_id, hub.TASK_RUNS), robust=True)


# --- transforms -------------------------------------------------------------------------------


class UpdateTaskStateDetails(BaseUniversalTransform):
    """A task-run state names its task run and that run's flow run."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is None:
            return
        proposal.state_details.flow_run_id = context.run.flow_run_id
        proposal.state_details.task_run_id = context.run.id


class IncrementTaskRunCount(BaseUniversalTransform):
    """Entering RUNNING counts an attempt (for retries)."""

    def before_transition(self, context: OrchestrationContext) -> None:
        proposal = context.proposed_state
        if proposal is not None and proposal.type == StateType.RUNNING:
            context.run.run_count += 1


# --- subflows ---------------------------------------------------------------------------------

#: Where :class:`UpdateSubflowParentTask` leaves the parent task run's new state for the service.
SUBFLOW_PARENT_TASK_STATE = "subflow_parent_task_state"


class UpdateSubflowParentTask(BaseUniversalTransform):
    """A subflow's every new state is mirrored on its parent task run (with
    ``child_flow_run_id``). The transform leaves the state in the context's parameters; the
    service that governs the flow run proposes it for the task run (``force``) in the same
    transaction, the one way a task run changes state."""

    def after_transition(self, context: OrchestrationContext) -> None:
        if self.nullified_transition():
            return
        run, validated = context.run, context.validated_state
        if getattr(run, "parent_task_run_id", None) is None or validated is None or not context.written:
            return
        details = StateDetails.model_validate(validated.state_details or {})
        details.child_flow_run_id = run.id
        details.task_run_id = run.parent_task_run_id
        details.transition_id = None
        context.parameters[SUBFLOW_PARENT_TASK_STATE] = (
            run.parent_task_run_id,
            StateCreate(
                type=StateType(validated.type),
                name=validated.name,
                message=validated.message,
                data=validated.data,
                state_details=details,
            ),
        )
