from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class ConcurrencyLimitV2(WorkspaceScopedModel):
    """A global concurrency limit (``v2/concurrency_limits``); also backs deployment limits."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    limit = models.PositiveIntegerField()
    active = models.BooleanField(default=True)
    active_slots = models.PositiveIntegerField(default=0)
    denied_slots = models.PositiveIntegerField(default=0)
    slot_decay_per_second = models.FloatField(default=0.0)
    avg_slot_occupancy_seconds = models.FloatField(default=2.0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="concurrency_limit_v2_unique_name"),
            models.CheckConstraint(
                condition=models.Q(active_slots__gte=0), name="concurrency_active_slots_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ConcurrencyLease(WorkspaceScopedModel):
    """Slots held on some limits until released or until the lease expires (a crashed holder
    never leaks a slot)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    limits = models.ManyToManyField(ConcurrencyLimitV2, related_name="leases")
    slots = models.PositiveIntegerField()
    expiration = models.DateTimeField(db_index=True)
    metadata = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)


class TaskRunConcurrencyLimit(WorkspaceScopedModel):
    """A tag-based task-run concurrency limit (``concurrency_limits/``, v1)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tag = models.CharField(max_length=255)
    concurrency_limit = models.PositiveIntegerField()
    active_slots = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "tag"], name="task_concurrency_unique_tag")
        ]
