from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class Flow(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    tags = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="flow_unique_name")]

    def __str__(self) -> str:
        return self.name
