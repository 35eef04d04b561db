from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class Log(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    level = models.SmallIntegerField()
    message = models.TextField()
    timestamp = models.DateTimeField()
    flow_run_id = models.UUIDField(null=True, blank=True)
    task_run_id = models.UUIDField(null=True, blank=True)
    worker_id = models.UUIDField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "flow_run_id", "timestamp"], name="log_ws_flow_run_ts"),
            models.Index(fields=["workspace", "task_run_id", "timestamp"], name="log_ws_task_run_ts"),
            models.Index(fields=["workspace", "timestamp"], name="log_ws_ts"),
        ]
