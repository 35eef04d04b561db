from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.db import models

from tenants.scoping import WorkspaceScopedModel


class Event(WorkspaceScopedModel):
    """A Prefect event as received. The event id comes from the client, so a re-sent event is stored
    once; writers must never touch a row of another workspace that happens to share an id."""

    id = models.UUIDField(primary_key=True, editable=False)
    occurred = models.DateTimeField()
    event = models.CharField(max_length=255)
    resource_id = models.CharField(max_length=255)
    resource = models.JSONField(default=dict)
    related = models.JSONField(default=list)
    payload = models.JSONField(default=dict)
    follows = models.UUIDField(null=True, blank=True)
    received = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "occurred"], name="event_ws_occurred"),
            models.Index(fields=["workspace", "event", "occurred"], name="event_ws_event_occurred"),
            models.Index(fields=["workspace", "resource_id", "occurred"], name="event_ws_resource_occurred"),
            # The event feed of a flow, deployment or work pool (``any_resource``/``related`` by
            # id): ``related @> [{"prefect.resource.id": …}]``. PostgreSQL only (the migration
            # builds nothing elsewhere).
            GinIndex(fields=["related"], opclasses=["jsonb_path_ops"], name="event_related"),
        ]
