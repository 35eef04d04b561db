"""Writing flow runs (state changes go through ``orchestration.services.orchestration``)."""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ServiceAccount, User
from core.errors import NotFound, ObjectNotFound
from orchestration.models import Flow, FlowRun, Log, TaskRun, TaskRunState
from orchestration.models.states import StateType
from orchestration.names import generate_run_name
from orchestration.persistence import concurrency as slots
from orchestration.schemas.actions import FlowRunCreate, FlowRunUpdate
from orchestration.schemas.states import StateCreate
from orchestration.selectors.work_pools import poll_answers_changed
from orchestration.services.orchestration import set_flow_run_state
from tenants.scoping import current_workspace_id

#: The states in which a deployment's run holds a concurrency slot (Prefect's
#: ``cleanup_flow_run_concurrency_slots``).
RUN_SLOT_HOLDING_STATES = (StateType.PENDING, StateType.RUNNING, StateType.CANCELLING)


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
            raise ObjectNotFound(f"Flow run with id {flow_run_id} not found")
        run.labels = {**(run.labels or {}), **labels}
        run.save(update_fields=["labels", "updated"])


def flow_run_delete(*, flow_run_id: uuid.UUID) -> None:
    if not flow_runs_delete(flow_run_ids=[flow_run_id]):
        raise NotFound("Flow run not found")


def flow_runs_delete(*, flow_run_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Delete runs and what belongs to them, as Prefect's server does: their states and inputs
    (cascades), their task runs with their states, their logs, and the deployment concurrency slot
    a run in PENDING, RUNNING or CANCELLING holds; subflow runs lose their parent task run. Returns
    the ids that existed."""
    with transaction.atomic():
        runs = list(
            FlowRun.objects.select_for_update(of=("self",))
            .select_related("state")
            .filter(id__in=flow_run_ids)
        )
        if not runs:
            return []
        ids = [run.id for run in runs]
        leases = [
            lease_id
            for run in runs
            if run.deployment_id and run.state_type in RUN_SLOT_HOLDING_STATES and run.state is not None
            for lease_id in [(run.state.state_details or {}).get("deployment_concurrency_lease_id")]
            if lease_id
        ]
        if leases:
            slots.leases_release([uuid.UUID(str(lease)) for lease in leases], timezone.now())
        task_run_ids = list(TaskRun.objects.filter(flow_run_id__in=ids).values_list("id", flat=True))
        if task_run_ids:
            FlowRun.objects.filter(parent_task_run_id__in=task_run_ids).update(parent_task_run_id=None)
            TaskRunState.objects.filter(task_run_id__in=task_run_ids).delete()
            TaskRun.objects.filter(id__in=task_run_ids).delete()
        Log.objects.filter(flow_run_id__in=ids).delete()
        FlowRun.objects.filter(id__in=ids).delete()
    poll_answers_changed()
    return ids
