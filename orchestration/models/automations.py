"""Automations (Prefect's ``automation`` and ``automation_related_resource`` tables), one set per
workspace.

The trigger and the actions are stored as the JSON Prefect's schema validated them to (every
default filled in), so an engine can load them back into the same models. What an engine queries
is in typed columns: ``enabled``, and the related resources (the deployments an action runs, the
resource that owns the automation) as rows of their own.
"""

from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class Automation(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    description = models.TextField(default="", blank=True)
    enabled = models.BooleanField(default=True)
    tags = models.JSONField(default=list, blank=True)
    trigger = models.JSONField()
    actions = models.JSONField(default=list)
    actions_on_trigger = models.JSONField(default=list, blank=True)
    actions_on_resolve = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "name"], name="automation_ws_name"),
            models.Index(fields=["workspace", "enabled"], name="automation_ws_enabled"),
        ]

    def __str__(self) -> str:
        return self.name


class AutomationRelatedResource(WorkspaceScopedModel):
    """A resource an automation is about: a deployment one of its actions runs, or the resource
    that owns it (a deployment's triggers are owned by the deployment)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="related_resources")
    resource_id = models.CharField(max_length=255)
    automation_owned_by_resource = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "automation", "resource_id"], name="automation_related_unique"
            )
        ]
        indexes = [models.Index(fields=["workspace", "resource_id"], name="automation_related_ws_res")]
