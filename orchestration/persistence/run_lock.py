"""The flow run a state change locks: ``SELECT … FOR UPDATE OF`` the run with its state and flow.

On PostgreSQL the statement is compiled once per process and database (the ORM's compilation was
the largest Python cost of a state change) and hydrated the way the ORM hydrates it; elsewhere the
ORM's own query runs.
"""

from __future__ import annotations

import uuid

from django.db import connection
from django.db.models.query import get_related_populators

from orchestration.models import FlowRun
from tenants.scoping import current_workspace_id


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


def locked_run(flow_run_id: uuid.UUID) -> FlowRun | None:
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
