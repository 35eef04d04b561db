"""The rows a state change reads first: the flow run (``SELECT … FOR UPDATE OF`` the run with its
state and flow), or the task run (locked), its current state row and its flow run with that run's
state.

On PostgreSQL each statement is compiled once per process and database (the ORM's compilation was
the largest Python cost of a state change) and hydrated the way the ORM hydrates it; elsewhere the
ORM's own query runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.db import connection
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

from orchestration.models import FlowRun, TaskRun, TaskRunState
from tenants.scoping import current_workspace_id


class _CompiledFetch:
    """One row by ``(workspace_id, id)``, compiled once per process and database from the ORM's
    queryset, hydrated the way the ORM hydrates it (its converters and related populators)."""

    _WORKSPACE = uuid.UUID(int=1)
    _ID = uuid.UUID(int=2)

    def __init__(self, alias: str, build: Callable[[uuid.UUID, uuid.UUID], QuerySet]):
        query = build(self._WORKSPACE, self._ID)
        self.model = query.model
        compiler = query.query.get_compiler(using=alias)
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        self.workspace_at = self.params.index(self._WORKSPACE)
        self.id_at = self.params.index(self._ID)
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        self.populators = get_related_populators(klass_info, select, alias)
        self.converters = list(compiler.get_converters([column[0] for column in select]).items())
        self.alias = alias

    def fetch(self, workspace_id, obj_id) -> Model | None:
        params = list(self.params)
        params[self.workspace_at] = uuid.UUID(str(workspace_id))
        params[self.id_at] = uuid.UUID(str(obj_id))
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
        obj = self.model.from_db(self.alias, self.init_list, row[self.start : self.end])
        for populator in self.populators:
            populator.populate(row, obj)
        return obj


def _locked_flow_run(workspace_id, run_id) -> QuerySet:
    return (
        FlowRun.objects.unscoped()
        .select_for_update(of=("self",))
        .select_related("state", "flow")
        .filter(workspace_id=workspace_id, id=run_id)
    )


def _locked_task_run(workspace_id, run_id) -> QuerySet:
    return TaskRun.objects.unscoped().select_for_update().filter(workspace_id=workspace_id, id=run_id)


def _task_run_state(workspace_id, state_id) -> QuerySet:
    return TaskRunState.objects.unscoped().filter(workspace_id=workspace_id, id=state_id)


def _flow_run_with_state(workspace_id, run_id) -> QuerySet:
    return FlowRun.objects.unscoped().select_related("state").filter(workspace_id=workspace_id, id=run_id)


_compiled: dict[tuple[Callable, str], _CompiledFetch] = {}


def _fetch(build: Callable[[uuid.UUID, uuid.UUID], QuerySet], workspace_id, obj_id):
    if connection.vendor != "postgresql":
        return build(workspace_id, obj_id).first()
    key = (build, connection.alias)
    fetch = _compiled.get(key)
    if fetch is None:
        fetch = _compiled[key] = _CompiledFetch(connection.alias, build)
    return fetch.fetch(workspace_id, obj_id)


def locked_run(flow_run_id: uuid.UUID) -> FlowRun | None:
    """The run (state and flow joined) locked for this transaction, in the current workspace."""
    workspace_id = current_workspace_id()
    if workspace_id is None:
        return (
            FlowRun.objects.select_for_update(of=("self",))
            .select_related("state", "flow")
            .filter(id=flow_run_id)
            .first()
        )
    return _fetch(_locked_flow_run, workspace_id, flow_run_id)


def locked_task_run(task_run_id: uuid.UUID) -> TaskRun | None:
    """The task run locked for this transaction, in the current workspace."""
    workspace_id = current_workspace_id()
    if workspace_id is None:
        return TaskRun.objects.select_for_update().filter(id=task_run_id).first()
    return _fetch(_locked_task_run, workspace_id, task_run_id)


def task_run_current_state(run: TaskRun) -> TaskRunState | None:
    """The state row ``run.state_id`` names, if it is one of this run's."""
    if not run.state_id:
        return None
    state = _fetch(_task_run_state, run.workspace_id, run.state_id)
    return state if state is not None and state.task_run_id == run.id else None


def flow_run_with_state(workspace_id: uuid.UUID, flow_run_id: uuid.UUID) -> FlowRun | None:
    """A flow run of the workspace with its current state joined (not locked)."""
    return _fetch(_flow_run_with_state, workspace_id, flow_run_id)
