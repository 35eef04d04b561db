from __future__ import annotations

from django.db import models

from orchestration.models.states import RunFields, StateFields
from tenants.scoping import WorkspaceScopedModel


class TaskRun(RunFields, WorkspaceScopedModel):
    """A task run. Its id comes from the client (in the events that report it): writers must check
    that an existing row with that id belongs to the same workspace before touching it."""

    id = models.UUIDField(primary_key=True, editable=False)
    flow_run_id = models.UUIDField(null=True, blank=True)
    state_id = models.UUIDField(null=True, blank=True)
    task_key = models.CharField(max_length=255)
    dynamic_key = models.CharField(max_length=255)
    cache_key = models.TextField(null=True, blank=True)
    cache_expiration = models.DateTimeField(null=True, blank=True)
    task_version = models.CharField(max_length=255, null=True, blank=True)
    task_inputs = models.JSONField(default=dict, blank=True)
    flow_run_run_count = models.IntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "flow_run_id"], name="task_run_ws_flow_run"),
            models.Index(fields=["workspace", "state_type"], name="task_run_ws_state_type"),
            models.Index(fields=["workspace", "-expected_start_time"], name="task_run_ws_expected_start"),
        ]

    def __str__(self) -> str:
        return self.name


class TaskRunState(StateFields, WorkspaceScopedModel):
    """A task-run state. Its id is the id of the event that carried it."""

    task_run = models.ForeignKey(TaskRun, on_delete=models.CASCADE, related_name="states")

    class Meta:
        indexes = [models.Index(fields=["task_run", "timestamp"], name="task_run_state_run_ts")]
