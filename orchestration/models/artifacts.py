from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class Artifact(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.CharField(max_length=255, null=True, blank=True)
    type = models.CharField(max_length=64, null=True, blank=True)
    description = models.TextField(null=True, blank=True)
    data = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    flow_run_id = models.UUIDField(null=True, blank=True)
    task_run_id = models.UUIDField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "key", "-created"], name="artifact_ws_key_created"),
            models.Index(fields=["workspace", "flow_run_id"], name="artifact_ws_flow_run"),
        ]
