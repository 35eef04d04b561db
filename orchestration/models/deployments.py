from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class Deployment(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flow = models.ForeignKey("orchestration.Flow", on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=255)
    version = models.CharField(max_length=255, null=True, blank=True)
    description = models.TextField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    concurrency_options = models.JSONField(null=True, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    parameter_openapi_schema = models.JSONField(null=True, blank=True)
    enforce_parameter_schema = models.BooleanField(default=True)
    job_variables = models.JSONField(default=dict, blank=True)
    pull_steps = models.JSONField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    work_queue = models.ForeignKey(
        "orchestration.WorkQueue",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deployments",
    )
    work_queue_name = models.CharField(max_length=255, null=True, blank=True)
    path = models.TextField(null=True, blank=True)
    entrypoint = models.TextField(null=True, blank=True)
    storage_document_id = models.UUIDField(null=True, blank=True)
    infrastructure_document_id = models.UUIDField(null=True, blank=True)
    created_by = models.JSONField(null=True, blank=True)
    updated_by = models.JSONField(null=True, blank=True)
    last_polled = models.DateTimeField(null=True, blank=True)
    # The status last reported (READY / NOT_READY), kept to emit a change event once.
    last_status = models.CharField(max_length=16, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["flow", "name"], name="deployment_unique_name_per_flow")
        ]
        indexes = [
            models.Index(fields=["workspace", "name"], name="deployment_ws_name"),
            models.Index(fields=["workspace", "-created"], name="deployment_ws_created"),
        ]

    def __str__(self) -> str:
        return self.name


class DeploymentSchedule(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="schedules")
    # {"cron", "timezone", "day_or"} | {"interval" (seconds), "anchor_date", "timezone"} | {"rrule", "timezone"}
    schedule = models.JSONField()
    active = models.BooleanField(default=True)
    max_scheduled_runs = models.PositiveIntegerField(null=True, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    slug = models.CharField(max_length=255, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "slug"],
                condition=models.Q(slug__isnull=False),
                name="schedule_unique_slug",
            ),
        ]
        indexes = [models.Index(fields=["workspace", "active"], name="schedule_ws_active")]
