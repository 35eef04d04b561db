from __future__ import annotations

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
        ]


class EventResource(WorkspaceScopedModel):
    """One resource an event is about, as Prefect's ``event_resources`` keeps them: the event's own
    resource (role ``""``) and each related resource (its role), with the event's ``occurred``.

    The event feed of one flow run, deployment or flow (``any_resource``/``related`` by id) reads
    these through ``(workspace, resource_id, occurred)`` and joins the events it names, instead of
    reading every event of the window. Written with the event, in the same transaction
    (``events.services``), once per (event, resource id, role); deleted with the event (Django's
    cascade; no database constraint, so the insert at ingest checks nothing)."""

    pk = models.CompositePrimaryKey("event", "resource_id", "resource_role")
    # No index of its own on the workspace: ``event_resource_ws_id_occurred`` leads with it.
    workspace = models.ForeignKey(
        "tenants.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # The primary key leads with the event: no other index on it.
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    resource_id = models.CharField(max_length=255)
    resource_role = models.CharField(max_length=255, blank=True)
    occurred = models.DateTimeField()

    class Meta:
        indexes = [
            # ``event_id`` (and the role, for ``related``) carried in the index (PostgreSQL), so the
            # events of one resource in a window are found from the index alone.
            models.Index(
                fields=["workspace", "resource_id", "occurred"],
                include=["event", "resource_role"],
                name="event_resource_ws_id_occurred",
            ),
        ]
