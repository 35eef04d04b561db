"""Writing flows. Callers are inside a workspace scope."""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction

from orchestration.models import Flow
from tenants.scoping import current_workspace_id


def flow_upsert(*, name: str, tags: list[str], labels: dict | None) -> tuple[Flow, bool]:
    """The flow named ``name``, created if missing: ``(flow, created)``. Concurrent callers agree."""
    existing = Flow.objects.filter(name=name).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return Flow.objects.create(
                workspace_id=current_workspace_id(), name=name, tags=tags or [], labels=labels or {}
            ), True
    except IntegrityError:
        return Flow.objects.get(name=name), False


def flow_update(*, flow: Flow, tags: list[str] | None) -> Flow:
    if tags is not None:
        flow.tags = tags
        flow.save(update_fields=["tags", "updated"])
    return flow


def flow_delete(*, flow_id: uuid.UUID) -> bool:
    deleted, _ = Flow.objects.filter(id=flow_id).delete()
    return bool(deleted)
