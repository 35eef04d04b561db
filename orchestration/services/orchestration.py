"""The one way a flow run changes state.

Every state change (the set_state route, flow-run creation, cancellation, automations, the
late-run sweep, tests) calls :func:`set_flow_run_state`. It locks the run, lets the policy's rules
govern the proposal, writes the resulting state row and the run's denormalised fields in one
transaction, and answers with Prefect's ``OrchestrationResult``.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import metrics
from core.errors import ObjectNotFound
from orchestration.models import FlowRun, TaskRun
from orchestration.persistence.run_lock import locked_run, locked_task_run, task_run_current_state
from orchestration.persistence.write_batch import deferred_inserts, flush
from orchestration.policies import (
    BackgroundTaskPolicy,
    CoreFlowPolicy,
    CoreTaskPolicy,
    GlobalFlowPolicy,
    GlobalTaskPolicy,
    MinimalFlowPolicy,
    MinimalTaskPolicy,
)
from orchestration.rules.base import OrchestrationContext, apply_rules, normalize_proposal
from orchestration.rules.task_context import TaskOrchestrationContext
from orchestration.rules.task_runs import SUBFLOW_PARENT_TASK_STATE
from orchestration.schemas.responses import OrchestrationResult
from orchestration.schemas.states import StateCreate
from orchestration.selectors.work_pools import poll_answers_changed

#: The run's columns that orchestration writes.
ORCHESTRATED_RUN_FIELDS = (
    "state",
    "state_type",
    "state_name",
    "state_timestamp",
    "run_count",
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
    "total_run_time",
    "empirical_policy",
)


def _orchestrated_values(run: FlowRun) -> tuple[Any, ...]:
    return tuple(getattr(run, "state_id" if name == "state" else name) for name in ORCHESTRATED_RUN_FIELDS)


def set_flow_run_state(
    *,
    flow_run_id: uuid.UUID,
    state: StateCreate,
    force: bool = False,
    actor: Any = None,
    client_version: str | None = None,
) -> OrchestrationResult:
    """Propose ``state`` for the flow run. With ``force`` the minimal policy governs instead of
    the core policy. ``client_version`` is the version of the Prefect client that proposed it, when
    a request did (the rules read it as ``parameters["client_version"]``; ``None``, for a caller
    inside the server, is a current client). Must be called inside a workspace scope."""
    policy = MinimalFlowPolicy if force else CoreFlowPolicy
    with transaction.atomic():
        run = locked_run(flow_run_id)
        if run is None:
            raise ObjectNotFound(f"Flow run with id {flow_run_id} not found")
        before = _orchestrated_values(run)

        context = OrchestrationContext(
            run=run,
            initial_state=run.state,
            proposed_state=normalize_proposal(state, now=timezone.now()),
            actor=actor,
            parameters={"client_version": client_version} if client_version is not None else {},
        )
        rules = [
            *policy.compile_transition_rules(*context.intended_transition),
            *GlobalFlowPolicy.compile_transition_rules(*context.intended_transition),
        ]
        # The new state row and its event are written with the run's update, in one statement.
        with deferred_inserts() as pending:
            apply_rules(context, rules)
            if context.orchestration_error is not None:
                raise context.orchestration_error
            changed = _orchestrated_values(run) != before
            if pending is None:
                if changed:
                    run.save(update_fields=[*ORCHESTRATED_RUN_FIELDS, "updated"])
            else:
                fields = [*ORCHESTRATED_RUN_FIELDS, "updated"] if changed else ()
                flush(pending, update=run if changed else None, update_fields=fields)
                if changed:
                    poll_answers_changed()

        # A subflow's new state is mirrored on its parent task run (UpdateSubflowParentTask).
        parent = context.parameters.get(SUBFLOW_PARENT_TASK_STATE)
        if parent is not None:
            parent_task_run_id, parent_state = parent
            if TaskRun.objects.filter(id=parent_task_run_id).exists():
                set_task_run_state(
                    task_run_id=parent_task_run_id, state=parent_state, force=True, actor=actor
                )

    metrics.record_set_state("flow_run", context.response_status)
    return OrchestrationResult(
        status=context.response_status,
        state=context.validated_state,
        details=context.response_details,
        written=context.written,
    )


#: The task run's columns that orchestration writes.
ORCHESTRATED_TASK_RUN_FIELDS = (
    "state_id",
    "state_type",
    "state_name",
    "state_timestamp",
    "run_count",
    "flow_run_run_count",
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
    "total_run_time",
    "empirical_policy",
    "delivery_queued_at",
    "delivery_client_id",
    "delivery_claimed_at",
)


_STATE_TIMESTAMP = ORCHESTRATED_TASK_RUN_FIELDS.index("state_timestamp")


def _older_than_current(context: TaskOrchestrationContext, current_timestamp: Any) -> bool:
    """Was a state row written whose timestamp is older than the run's current state's? (The
    event recorder stamps states with the client's ``occurred``, which can be later than now.)"""
    written = context.validated_state if context.written else None
    return (
        written is not None
        and current_timestamp is not None
        and written.timestamp is not None
        and written.timestamp < current_timestamp
    )


def set_task_run_state(
    *,
    task_run_id: uuid.UUID,
    state: StateCreate,
    force: bool = False,
    actor: Any = None,
    client_version: str | None = None,
) -> OrchestrationResult:
    """Propose ``state`` for the task run: the one way a task run changes state over HTTP (the
    event recorder stores the states the client orchestrated itself). A deferred proposal is
    governed by the background-task policy, ``force`` by the minimal policy, any other by the
    core task policy (Prefect's ``models.task_runs.set_task_run_state``). Whichever arrives first,
    the newest state wins: when the run's current state (from an event) is newer than the
    proposal, the proposal is kept in the history and the run stays in its state, as the event
    recorder never lets an older event move a run. Must be called inside a workspace scope."""
    if state.state_details.deferred:
        policy = BackgroundTaskPolicy
    elif force:
        policy = MinimalTaskPolicy
    else:
        policy = CoreTaskPolicy
    with transaction.atomic():
        run = locked_task_run(task_run_id)
        if run is None:
            raise ObjectNotFound(f"Task run with id {task_run_id} not found")
        initial_state = task_run_current_state(run)
        before = tuple(getattr(run, name) for name in ORCHESTRATED_TASK_RUN_FIELDS)
        context = TaskOrchestrationContext(
            run=run,
            initial_state=initial_state,
            proposed_state=normalize_proposal(state, now=timezone.now()),
            actor=actor,
            parameters={"client_version": client_version} if client_version is not None else {},
        )
        rules = [
            *policy.compile_transition_rules(*context.intended_transition),
            *GlobalTaskPolicy.compile_transition_rules(*context.intended_transition),
        ]
        # The new state row is written with the run's update, in one statement (as for flow runs).
        with deferred_inserts() as pending:
            apply_rules(context, rules)
            if context.orchestration_error is not None:
                raise context.orchestration_error
            if _older_than_current(context, before[_STATE_TIMESTAMP]):
                # The run's current state (reported by an event stamped later than this proposal)
                # is newer: the proposal joins the history, the run stays where it is.
                for name, value in zip(ORCHESTRATED_TASK_RUN_FIELDS, before, strict=True):
                    setattr(run, name, value)
            changed = tuple(getattr(run, name) for name in ORCHESTRATED_TASK_RUN_FIELDS) != before
            if pending is None:
                if changed:
                    run.save(update_fields=[*ORCHESTRATED_TASK_RUN_FIELDS, "updated"])
            else:
                fields = [*ORCHESTRATED_TASK_RUN_FIELDS, "updated"] if changed else ()
                flush(pending, update=run if changed else None, update_fields=fields)

    metrics.record_set_state("task_run", context.response_status)
    return OrchestrationResult(
        status=context.response_status,
        state=context.validated_state,
        details=context.response_details,
        written=context.written,
    )
