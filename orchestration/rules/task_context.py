"""The orchestration context of one proposed task-run transition (Prefect's
``TaskOrchestrationContext``): the same machinery as flow runs (``rules/base.py``), over a
:class:`TaskRun` and its :class:`TaskRunState` rows.

A task run's current state is named by ``state_id`` (the event recorder writes state rows whose id
is the event's id), so the context is handed the current state row rather than reading
``run.state``. Its settings are Prefect's ``TaskRunPolicy``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property

from django.utils import timezone

from orchestration.models import FlowRun, TaskRun, TaskRunState
from orchestration.models.states import StateType
from orchestration.persistence.run_lock import flow_run_with_state
from orchestration.persistence.write_batch import insert_or_defer
from orchestration.rules.base import OrchestrationContext, default_state_name
from orchestration.schemas.task_runs import TaskRunPolicy


@dataclass(eq=False)
class TaskOrchestrationContext(OrchestrationContext):
    """``run`` is the locked :class:`TaskRun`; ``initial_state`` its current
    :class:`TaskRunState` (or ``None``)."""

    @property
    def task_run(self) -> TaskRun:
        return self.run  # type: ignore[return-value]

    @property
    def run_settings(self) -> TaskRunPolicy:  # type: ignore[override]
        return TaskRunPolicy.model_validate(dict(self.run.empirical_policy or {}))

    @cached_property
    def flow_run(self) -> FlowRun | None:
        """The task run's flow run (in the same workspace), with its current state."""
        if self.run.flow_run_id is None:
            return None
        return flow_run_with_state(self.run.workspace_id, self.run.flow_run_id)

    def validate_proposed_state(self) -> None:
        """Write the governed proposal as the task run's new state row; with no proposal left,
        the current state is what the response reports."""
        if self.proposed_state is None:
            self.validated_state = self.initial_state
            return
        proposal = self.proposed_state
        row = TaskRunState(
            id=uuid.uuid4(),
            workspace_id=self.run.workspace_id,
            task_run=self.run,
            type=StateType(proposal.type).value,
            name=proposal.name or default_state_name(proposal.type),
            timestamp=proposal.timestamp or timezone.now(),
            message=proposal.message,
            data=proposal.data,
            state_details=proposal.state_details.model_dump(mode="json"),
        )
        # Sent with the run's update in one statement inside the service's ``deferred_inserts``.
        insert_or_defer(row, lambda: row.save(force_insert=True))
        self.run.state_id = row.id
        self.validated_state = row
        self.written = True
