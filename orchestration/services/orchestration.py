"""The one way a flow run changes state.

Every state change (the set_state route, flow-run creation, cancellation, automations, the
late-run sweep, tests) calls :func:`set_flow_run_state`. It locks the run, lets the policy's rules
govern the proposal, writes the resulting state row and the run's denormalised fields in one
transaction, and answers with Prefect's ``OrchestrationResult``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models.query import get_related_populators
from django.utils import timezone

from core.errors import NotFound
from orchestration.api.schemas import StateCreate
from orchestration.api.wire import state_to_wire
from orchestration.models import FlowRun, FlowRunState
from orchestration.policies import CoreFlowPolicy, GlobalFlowPolicy, MinimalFlowPolicy
from orchestration.rules.base import (
    OrchestrationContext,
    SetStateStatus,
    accept_details,
    apply_rules,
    normalize_proposal,
)
from orchestration.selectors.work_pools import poll_answers_changed
from orchestration.services.write_batch import deferred_inserts, flush
from tenants.scoping import current_workspace_id

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


@dataclass
class OrchestrationResult:
    """What ``POST /flow_runs/{id}/set_state`` answers. ``state`` is the new state row when one
    was written, else the run's current state (``None`` only for a run without one). ``written``
    tells the view to answer 201 rather than 200."""

    status: SetStateStatus
    state: FlowRunState | None
    details: dict[str, Any] = field(default_factory=accept_details)
    written: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {
            "state": state_to_wire(self.state),
            "status": SetStateStatus(self.status).value,
            "details": dict(self.details),
        }


def _orchestrated_values(run: FlowRun) -> tuple[Any, ...]:
    return tuple(getattr(run, "state_id" if name == "state" else name) for name in ORCHESTRATED_RUN_FIELDS)


class _CompiledRunLock:
    """``SELECT … FOR UPDATE OF`` the run, with its state and flow, compiled once per process and
    database (the ORM's compilation was the largest Python cost of a state change), hydrated the
    way the ORM hydrates it (its converters and related populators)."""

    _WORKSPACE = uuid.UUID(int=1)
    _RUN = uuid.UUID(int=2)

    def __init__(self, alias: str):
        query = (
            FlowRun.objects.unscoped()
            .select_for_update(of=("self",))
            .select_related("state", "flow")
            .filter(workspace_id=self._WORKSPACE, id=self._RUN)
        )
        compiler = query.query.get_compiler(using=alias)
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        self.workspace_at = self.params.index(self._WORKSPACE)
        self.run_at = self.params.index(self._RUN)
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        self.populators = get_related_populators(klass_info, select, alias)
        self.converters = list(compiler.get_converters([column[0] for column in select]).items())
        self.alias = alias

    def fetch(self, workspace_id, run_id) -> FlowRun | None:
        params = list(self.params)
        params[self.workspace_at] = uuid.UUID(str(workspace_id))
        params[self.run_at] = uuid.UUID(str(run_id))
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if self.converters:
            row = list(row)
            for position, (converters, expression) in self.converters:
                value = row[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[position] = value
        run = FlowRun.from_db(self.alias, self.init_list, row[self.start : self.end])
        for populator in self.populators:
            populator.populate(row, run)
        return run


_run_locks: dict[str, _CompiledRunLock] = {}


def _locked_run(flow_run_id: uuid.UUID) -> FlowRun | None:
    """The run (state and flow joined) locked for this transaction, in the current workspace."""
    workspace_id = current_workspace_id()
    if connection.vendor != "postgresql" or workspace_id is None:
        return (
            FlowRun.objects.select_for_update(of=("self",))
            .select_related("state", "flow")
            .filter(id=flow_run_id)
            .first()
        )
    lock = _run_locks.get(connection.alias)
    if lock is None:
        lock = _run_locks[connection.alias] = _CompiledRunLock(connection.alias)
    return lock.fetch(workspace_id, flow_run_id)


def set_flow_run_state(
    *,
    flow_run_id: uuid.UUID,
    state: StateCreate,
    force: bool = False,
    actor: Any = None,
) -> OrchestrationResult:
    """Propose ``state`` for the flow run. With ``force`` the minimal policy governs instead of
    the core policy. Must be called inside a workspace scope."""
    policy = MinimalFlowPolicy if force else CoreFlowPolicy
    with transaction.atomic():
        run = _locked_run(flow_run_id)
        if run is None:
            raise NotFound("Flow run not found")
        before = _orchestrated_values(run)

        context = OrchestrationContext(
            run=run,
            initial_state=run.state,
            proposed_state=normalize_proposal(state, now=timezone.now()),
            actor=actor,
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

    return OrchestrationResult(
        status=context.response_status,
        state=context.validated_state,
        details=context.response_details,
        written=context.written,
    )
