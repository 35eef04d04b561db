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
    # Background (deferred) task runs waiting for a task worker: ``delivery_queued_at`` is set when
    # the run enters a deferred SCHEDULED state (Prefect's ``EnqueueScheduledTasks``) and cleared
    # once a worker acknowledged it; ``delivery_client_id`` / ``delivery_claimed_at`` name the worker
    # it was sent to and when (cleared again when that worker vanished before acknowledging).
    delivery_queued_at = models.DateTimeField(null=True, blank=True)
    delivery_client_id = models.CharField(max_length=255, null=True, blank=True)
    delivery_claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Prefect's idempotency key of a task run inside a flow run.
            models.UniqueConstraint(
                fields=["workspace", "flow_run_id", "task_key", "dynamic_key"],
                condition=models.Q(flow_run_id__isnull=False),
                name="task_run_unique_flow_run_task_key_dynamic_key",
            ),
        ]
        indexes = [
            models.Index(
                fields=["workspace", "task_key", "delivery_queued_at"],
                condition=models.Q(delivery_queued_at__isnull=False),
                name="task_run_delivery_queue",
            ),
            models.Index(fields=["workspace", "task_key", "dynamic_key"], name="task_run_ws_task_key"),
            models.Index(fields=["workspace", "flow_run_id"], name="task_run_ws_flow_run"),
            models.Index(fields=["workspace", "state_type"], name="task_run_ws_state_type"),
            models.Index(fields=["workspace", "-expected_start_time"], name="task_run_ws_expected_start"),
            # The UI's dashboard: task runs started in a window, counted by state from the index
            # alone (PostgreSQL; elsewhere the state is not carried).
            models.Index(
                fields=["workspace", "start_time"], include=["state_type"], name="task_run_ws_start"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TaskRunState(StateFields, WorkspaceScopedModel):
    """A task-run state. Its id is the id of the event that carried it."""

    task_run = models.ForeignKey(TaskRun, on_delete=models.CASCADE, related_name="states")

    class Meta:
        indexes = [models.Index(fields=["task_run", "timestamp"], name="task_run_state_run_ts")]


class TaskWorker(WorkspaceScopedModel):
    """A task worker connected to ``task_runs/subscriptions/scheduled`` (Prefect's in-memory
    ``task_worker_tracker``, kept in the database so every server process sees it): seen at
    ``last_seen`` serving ``task_keys``; forgotten when its socket closes."""

    identifier = models.CharField(max_length=255)
    task_keys = models.JSONField(default=list, blank=True)
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "identifier"], name="task_worker_unique_identifier"),
        ]
        indexes = [models.Index(fields=["workspace", "last_seen"], name="task_worker_ws_last_seen")]

    def __str__(self) -> str:
        return self.identifier
