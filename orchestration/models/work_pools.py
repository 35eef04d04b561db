from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class WorkPool(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    description = models.TextField(null=True, blank=True)
    type = models.CharField(max_length=255)
    base_job_template = models.JSONField(default=dict, blank=True)
    is_paused = models.BooleanField(default=False)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    default_queue = models.ForeignKey(
        "orchestration.WorkQueue", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    storage_configuration = models.JSONField(default=dict, blank=True)
    # The status last reported (READY / NOT_READY / PAUSED), kept to emit a change event once.
    last_status = models.CharField(max_length=16, null=True, blank=True)
    last_transitioned_status_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="work_pool_unique_name")]

    def __str__(self) -> str:
        return self.name


class WorkQueue(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    work_pool = models.ForeignKey(WorkPool, on_delete=models.CASCADE, related_name="queues")
    name = models.CharField(max_length=255)
    description = models.TextField(null=True, blank=True)
    is_paused = models.BooleanField(default=False)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    priority = models.PositiveIntegerField(default=1)
    filter = models.JSONField(null=True, blank=True)
    last_polled = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["work_pool", "name"], name="work_queue_unique_name_per_pool")
        ]
        indexes = [models.Index(fields=["workspace", "name"], name="work_queue_ws_name")]

    def __str__(self) -> str:
        return self.name


class Worker(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    work_pool = models.ForeignKey(WorkPool, on_delete=models.CASCADE, related_name="workers")
    name = models.CharField(max_length=255)
    last_heartbeat_time = models.DateTimeField(null=True, blank=True)
    heartbeat_interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["work_pool", "name"], name="worker_unique_name_per_pool")
        ]
        indexes = [models.Index(fields=["work_pool", "-last_heartbeat_time"], name="worker_pool_heartbeat")]

    def __str__(self) -> str:
        return self.name
