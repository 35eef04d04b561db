from __future__ import annotations

import uuid

from django.db import models

from orchestration.models.states import RunFields, StateFields
from tenants.scoping import WorkspaceScopedModel


class FlowRun(RunFields, WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flow = models.ForeignKey("orchestration.Flow", on_delete=models.CASCADE, related_name="flow_runs")
    state = models.ForeignKey(
        "orchestration.FlowRunState", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    flow_version = models.CharField(max_length=255, null=True, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    context = models.JSONField(default=dict, blank=True)
    parent_task_run_id = models.UUIDField(null=True, blank=True, db_index=True)
    auto_scheduled = models.BooleanField(default=False)
    infrastructure_document_id = models.UUIDField(null=True, blank=True)
    infrastructure_pid = models.CharField(max_length=255, null=True, blank=True)
    created_by = models.JSONField(null=True, blank=True)
    job_variables = models.JSONField(default=dict, blank=True)
    # Deployment and work-pool links (the deployment models come with the scheduling work).
    deployment_id = models.UUIDField(null=True, blank=True, db_index=True)
    deployment_version = models.CharField(max_length=255, null=True, blank=True)
    work_queue_id = models.UUIDField(null=True, blank=True)
    work_queue_name = models.CharField(max_length=255, null=True, blank=True)
    work_pool_id = models.UUIDField(null=True, blank=True)
    work_pool_name = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "flow", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="flow_run_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "state_type"], name="flow_run_ws_state_type"),
            models.Index(fields=["workspace", "expected_start_time"], name="flow_run_ws_expected_start"),
            models.Index(fields=["workspace", "-created"], name="flow_run_ws_created"),
            models.Index(fields=["workspace", "flow"], name="flow_run_ws_flow"),
            # The UI's runs lists sorted by start time (a work pool's, a deployment's): walked in
            # order, filtered, stopped at the page's end.
            models.Index(fields=["workspace", "-start_time", "-id"], name="flow_run_ws_start"),
            # A work pool's runs: by the pool, or by one of its queues.
            models.Index(fields=["workspace", "work_pool_id"], name="flow_run_ws_pool"),
            models.Index(fields=["workspace", "work_queue_id"], name="flow_run_ws_queue"),
            # The worker poll: due runs of a queue.
            models.Index(
                fields=["work_queue_id", "next_scheduled_start_time"],
                condition=models.Q(state_type="SCHEDULED"),
                name="flow_run_queue_due",
            ),
            # The scheduler: future auto-scheduled runs of a deployment.
            models.Index(
                fields=["deployment_id", "next_scheduled_start_time"],
                condition=models.Q(auto_scheduled=True, state_type="SCHEDULED"),
                name="flow_run_deployment_scheduled",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class FlowRunState(StateFields, WorkspaceScopedModel):
    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="states")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["flow_run", "timestamp"], name="flow_run_state_run_ts")]
