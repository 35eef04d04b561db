"""Writing flow runs (state changes go through ``orchestration.services.orchestration``)."""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction

from accounts.models import ServiceAccount, User
from core.errors import NotFound
from orchestration.models import Flow, FlowRun
from orchestration.models.states import StateType
from orchestration.names import generate_run_name
from orchestration.schemas.actions import FlowRunCreate, FlowRunUpdate
from orchestration.schemas.states import StateCreate
from orchestration.selectors.work_pools import poll_answers_changed
from orchestration.services.orchestration import set_flow_run_state
from tenants.scoping import current_workspace_id


def flow_run_create(
    *,
    data: FlowRunCreate,
    actor=None,
    work_queue_id: uuid.UUID | None = None,
    work_pool_id: uuid.UUID | None = None,
    deployment_version: str | None = None,
) -> tuple[FlowRun, bool]:
    """A new flow run in its initial state (Pending unless given): ``(run, created)``. With an
    idempotency key already used for this flow, the existing run comes back instead.

    ``work_queue_id``, ``work_pool_id`` and ``deployment_version`` are what a deployment resolved
    for its run (no client sends them): the run carries them from its first state on, so that
    state's event names the queue and pool."""
    flow = Flow.objects.filter(id=data.flow_id).first()
    if flow is None:
        raise NotFound("Flow not found.")
    if data.idempotency_key:
        existing = FlowRun.objects.filter(flow=flow, idempotency_key=data.idempotency_key).first()
        if existing is not None:
            return existing, False
    labels = {**(data.labels or {}), "prefect.flow.id": str(flow.id)}
    if data.deployment_id:
        labels["prefect.deployment.id"] = str(data.deployment_id)
    state = data.state or StateCreate(type=StateType.PENDING, name="Pending")
    try:
        with transaction.atomic():
            run = FlowRun.objects.create(
                workspace_id=current_workspace_id(),
                flow=flow,
                name=data.name or generate_run_name(),
                flow_version=data.flow_version,
                parameters=data.parameters,
                context=data.context,
                parent_task_run_id=data.parent_task_run_id,
                infrastructure_document_id=data.infrastructure_document_id,
                empirical_policy=data.empirical_policy.model_dump(mode="json"),
                tags=data.tags,
                labels=labels,
                idempotency_key=data.idempotency_key,
                work_pool_name=data.work_pool_name,
                work_queue_name=data.work_queue_name,
                job_variables=data.job_variables or {},
                deployment_id=data.deployment_id,
                deployment_version=deployment_version,
                work_queue_id=work_queue_id,
                work_pool_id=work_pool_id,
                created_by=_created_by(actor),
            )
            set_flow_run_state(flow_run_id=run.id, state=state, force=True, actor=actor)
            # Read back before the commit: once it is durable, the answer must not need the
            # database (a connection lost then would answer 503 for a run that exists).
            run = FlowRun.objects.select_related("state").get(id=run.id)
    except IntegrityError:
        # A concurrent request with the same idempotency key won.
        existing = FlowRun.objects.filter(flow=flow, idempotency_key=data.idempotency_key).first()
        if existing is None:
            raise
        return existing, False
    return run, True


def _created_by(actor) -> dict | None:
    if isinstance(actor, User):
        return {"id": str(actor.id), "type": "USER", "display_value": actor.email}
    if isinstance(actor, ServiceAccount):
        return {"id": str(actor.id), "type": "BOT", "display_value": actor.name}
    return None


def flow_run_update(*, flow_run_id: uuid.UUID, data: FlowRunUpdate) -> None:
    changes = data.model_dump(exclude_unset=True, mode="json")
    if "empirical_policy" in changes and changes["empirical_policy"] is None:
        changes.pop("empirical_policy")
    with transaction.atomic():
        run = FlowRun.objects.select_for_update(of=("self",)).filter(id=flow_run_id).first()
        if run is None:
            raise NotFound("Flow run not found")
        for name, value in changes.items():
            if name in ("name", "flow_version", "infrastructure_pid") or value is not None:
                setattr(run, name, value)
        run.save()


def flow_run_set_labels(*, flow_run_id: uuid.UUID, labels: dict) -> None:
    with transaction.atomic():
        run = FlowRun.objects.select_for_update(of=("self",)).filter(id=flow_run_id).first()
        if run is None:
            raise NotFound("Flow run not found")
        run.labels = {**(run.labels or {}), **labels}
        run.save(update_fields=["labels", "updated"])


def flow_run_delete(*, flow_run_id: uuid.UUID) -> None:
    deleted, _ = FlowRun.objects.filter(id=flow_run_id).delete()
    poll_answers_changed()
    if not deleted:
        raise NotFound("Flow run not found")
