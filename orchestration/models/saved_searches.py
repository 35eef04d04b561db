"""Saved searches of Prefect's UI (a named set of filters) and the workspace's default result
storage (Prefect's ``server-default-result-storage`` configuration key)."""

from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class SavedSearch(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    filters = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="saved_search_unique_name")]

    def __str__(self) -> str:
        return self.name


class ResultStorageDefault(WorkspaceScopedModel):
    """At most one per workspace: the block document flows store results in by default."""

    block_document = models.ForeignKey(
        "orchestration.BlockDocument", on_delete=models.CASCADE, related_name="+"
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace"], name="result_storage_default_unique")]
