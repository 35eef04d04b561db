"""Writing flows. Callers are inside a workspace scope."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db import IntegrityError, transaction

from orchestration.models import Deployment, Flow
from orchestration.services.deployments import deployments_bulk_delete
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


def flow_delete(*, flow_id: uuid.UUID, actor=None) -> bool:
    """Delete the flow with its runs and its deployments (each deployment as
    ``deployment_delete`` deletes one: audited, its concurrency limit removed)."""
    return bool(flows_bulk_delete(flow_ids=[flow_id], actor=actor))


def flows_bulk_delete(*, flow_ids: Sequence[uuid.UUID], actor=None) -> list[uuid.UUID]:
    """Prefect's ``delete_flows``: the flows, their deployments and (by cascade) their runs, in one
    transaction. The ids deleted, in the order given; ids not there are skipped."""
    with transaction.atomic():
        present = set(
            Flow.objects.select_for_update().filter(id__in=list(flow_ids)).values_list("id", flat=True)
        )
        deleted = [flow_id for flow_id in dict.fromkeys(flow_ids) if flow_id in present]
        if deleted:
            deployment_ids = list(
                Deployment.objects.filter(flow_id__in=deleted).order_by("id").values_list("id", flat=True)
            )
            deployments_bulk_delete(deployment_ids=deployment_ids, actor=actor)
            Flow.objects.filter(id__in=deleted).delete()
    return deleted
