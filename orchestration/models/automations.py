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


class AutomationBucket(WorkspaceScopedModel):
    """One open window of an event trigger for one bucketing key (Prefect's ``automation_bucket``):
    shared by every process, so one event stream counted from two processes is counted once. The
    row is locked (``select_for_update``) while an event is evaluated against it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="buckets")
    trigger_id = models.UUIDField()
    bucketing_key = models.TextField()  # the JSON list of the for_each labels' values
    start = models.DateTimeField()
    end = models.DateTimeField()
    count = models.IntegerField(default=0)
    last_event = models.JSONField(null=True, blank=True)
    last_operation = models.CharField(max_length=64, default="", blank=True)
    updated = models.DateTimeField(auto_now=True)
    # A proactive trigger's window: evaluated on the clock when it ends, and kept by the sweep
    # until then (a clock that stopped for a while still finds it).
    proactive = models.BooleanField(default=False)
    # When a proactive trigger fired for this key and has not resolved since (Prefect's column).
    triggered_at = models.DateTimeField(null=True, blank=True)
    # Not a window but a proactive `after` trigger's fired one, kept until ``end`` so that its
    # expected event arriving late resolves the trigger (``prefect.automation.resolved``).
    awaiting_resolution = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["automation", "trigger_id", "bucketing_key"], name="automation_bucket_unique"
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "end"], name="automation_bucket_ws_end"),
            models.Index(fields=["proactive", "end"], name="automation_bucket_proactive"),
        ]


class AutomationHeldEvent(WorkspaceScopedModel):
    """An ``expect``-only event of a proactive trigger with ``after``, held for the windows that
    open later over it (Prefect's ``automation_held_events``). Events of one key can be evaluated
    in any order, so an expected event may be evaluated before the ``after`` event that opens its
    window: a window that opens (or rolls) counts the held events that occurred inside it. An event
    already held was counted once, and is not evaluated again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="held_events")
    trigger_id = models.UUIDField()
    bucketing_key = models.TextField()
    event_id = models.UUIDField()
    occurred = models.DateTimeField()
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["automation", "trigger_id", "bucketing_key", "event_id"],
                name="automation_held_event_unique",
            )
        ]
        indexes = [
            models.Index(
                fields=["automation", "trigger_id", "bucketing_key", "occurred"],
                name="automation_held_event_window",
            ),
            models.Index(fields=["updated"], name="automation_held_event_updated"),
        ]


class AutomationDeferredEvaluation(WorkspaceScopedModel):
    """A stored batch of events whose trigger evaluation failed, evaluated again by a task: its row
    is written in the transaction that evaluates the batch, so the batch counts once however often
    the task is delivered (a redelivery finds the row and evaluates nothing). Its id is the task's;
    the sweep removes rows long past any redelivery."""

    id = models.UUIDField(primary_key=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["created"], name="automation_deferred_created")]


class AutomationFiring(WorkspaceScopedModel):
    """A trigger that fired, once: the event that made it fire is part of its unique key, so one
    event evaluated twice (by two processes) fires a trigger's bucket once. It keeps the actions to
    run as they were when it fired."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="firings")
    trigger_id = models.UUIDField()
    bucketing_key = models.TextField()
    bucket_start = models.DateTimeField()
    triggered = models.DateTimeField()
    triggering_labels = models.JSONField(default=dict)
    triggering_event = models.JSONField(null=True, blank=True)
    triggering_event_id = models.UUIDField(null=True, blank=True)
    triggered_event_id = models.UUIDField()
    actions = models.JSONField(default=list)  # [{"action": …, "source": "actions"|"actions_on_trigger"}]
    # What makes a firing with no event of its own unique: a proactive window (its key and start)
    # or the child firings a compound or sequence trigger consumed. Null for reactive firings.
    window_key = models.TextField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["automation", "trigger_id", "bucketing_key", "triggering_event_id"],
                name="automation_firing_unique",
            ),
            models.UniqueConstraint(
                fields=["automation", "trigger_id", "window_key"], name="automation_firing_window_unique"
            ),
        ]
        indexes = [models.Index(fields=["workspace", "triggered"], name="automation_firing_ws_time")]


class AutomationChildFiring(WorkspaceScopedModel):
    """The latest firing of one child of a compound or sequence trigger, waiting for its siblings
    (Prefect's ``composite_trigger_child_firing``): one row per (parent, child), replaced by the
    child's next firing, deleted when the parent fires."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="child_firings")
    parent_trigger_id = models.UUIDField()
    child_trigger_id = models.UUIDField()
    child_firing_id = models.UUIDField()
    child_fired = models.DateTimeField()
    child_firing = models.JSONField(default=dict)  # triggering_event, triggering_labels

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["automation", "parent_trigger_id", "child_trigger_id"],
                name="automation_child_firing_unique",
            )
        ]


class AutomationActionRun(WorkspaceScopedModel):
    """One action of one firing, run once: ``(firing, action_index)`` is unique, and the row is
    written in the transaction that runs the action."""

    id = models.BigAutoField(primary_key=True)
    firing = models.ForeignKey(AutomationFiring, on_delete=models.CASCADE, related_name="action_runs")
    action_index = models.IntegerField()
    action_type = models.CharField(max_length=64)
    state = models.CharField(max_length=16)  # executed | failed
    reason = models.TextField(default="", blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["firing", "action_index"], name="automation_action_run_unique")
        ]
