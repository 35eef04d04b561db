"""Fields every state row and every run's denormalised current state share."""

from __future__ import annotations

from django.db import models


class StateType(models.TextChoices):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"


TERMINAL_STATE_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)


class StateFields(models.Model):
    """A state: what happened to a run at a moment (Prefect's ``State``)."""

    id = models.UUIDField(primary_key=True, editable=False)
    type = models.CharField(max_length=16, choices=StateType.choices)
    name = models.CharField(max_length=255)
    timestamp = models.DateTimeField()
    message = models.TextField(null=True, blank=True)
    data = models.JSONField(null=True, blank=True)
    state_details = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True


class RunFields(models.Model):
    """What flow runs and task runs share, including the denormalised current state."""

    name = models.CharField(max_length=255)
    state_type = models.CharField(max_length=16, choices=StateType.choices, null=True, blank=True)
    state_name = models.CharField(max_length=255, null=True, blank=True)
    state_timestamp = models.DateTimeField(null=True, blank=True)
    run_count = models.IntegerField(default=0)
    expected_start_time = models.DateTimeField(null=True, blank=True)
    next_scheduled_start_time = models.DateTimeField(null=True, blank=True)
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    total_run_time = models.FloatField(default=0.0)  # seconds
    empirical_policy = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
