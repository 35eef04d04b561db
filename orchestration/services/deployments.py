"""Writing deployments and their schedules, and creating flow runs from them.

Semantics follow Prefect's server (``prefect/server/api/deployments.py`` and
``models/deployments.py``):

* ``POST deployments/`` upserts by (flow, name): an existing deployment takes the fields the request
  sent, its future auto-scheduled runs are deleted and its schedules replaced by the request's;
* naming a work pool resolves its queue (the named one, created when missing, or the pool's default
  queue); an unknown pool is a 404 ``Work pool "x" not found.``;
* any update deletes the deployment's future auto-scheduled runs (the scheduler recreates them from
  the new settings), so pausing removes them; deleting a deployment removes all its scheduled runs;
* parameters are checked against ``parameter_openapi_schema`` when ``enforce_parameter_schema``.

A new deployment counts against the account's plan (``billing.entitlements.check_deployment``): the
account row is locked first so two concurrent creations cannot both take the last slot, and a
refusal writes nothing. Deployments are events too: ``prefect.deployment.created``, ``.updated``,
``.deleted`` and ``.ready`` are recorded with the change they report.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit import events
from audit.actors import SYSTEM
from billing.entitlements import check_deployment
from billing.selectors import ensure_new_work_allowed
from billing.services import read_only_recheck_on_commit
from core.errors import AppError, Conflict, InvalidInput, NotFound, PlanLimitExceeded
from orchestration.events.services import event_record_on_commit
from orchestration.models import Deployment, DeploymentSchedule, Flow, FlowRun, Variable, WorkPool, WorkQueue
from orchestration.models.states import StateType
from orchestration.schemas.actions import FlowRunCreate
from orchestration.schemas.deployments import (
    DeploymentCreate,
    DeploymentFlowRunCreate,
    DeploymentScheduleCreate,
    DeploymentScheduleUpdate,
    DeploymentUpdate,
    stored_schedule,
)
from orchestration.schemas.parameters import job_variables_check, parameters_check
from orchestration.schemas.run_hydration import HydrationError, has_placeholders, hydrate
from orchestration.schemas.states import StateCreate
from orchestration.selectors.usage import deployments_count_for_account
from orchestration.selectors.work_pools import poll_answers_changed
from orchestration.services import auditing
from orchestration.services.concurrency import (
    deployment_concurrency_limit,
    deployment_concurrency_limit_delete,
)
from orchestration.services.flow_runs import _created_by, flow_run_create
from orchestration.services.work_pools import work_queue_create
from tenants.models import Account

#: A deployment polled (by its runner or a worker of its queue) this recently is READY.
DEPLOYMENT_LAST_POLLED_TIMEOUT = dt.timedelta(seconds=60)
#: A runner's poll is recorded at most this often per deployment.
POLL_RECORD_INTERVAL = dt.timedelta(seconds=5)
DEFAULT_AGENT_WORK_POOL_NAME = "default-agent-pool"
#: Fields whose change a ``prefect.deployment.updated`` event reports (Prefect's list).
EVENT_FIELDS = (
    "description",
    "tags",
    "parameters",
    "parameter_openapi_schema",
    "enforce_parameter_schema",
    "entrypoint",
    "path",
    "pull_steps",
    "work_queue_id",
    "job_variables",
    "paused",
    "labels",
    "version",
    "concurrency_limit",
    "concurrency_options",
)


class InvalidParameters(AppError):
    """Parameters that do not conform to the deployment's parameter schema."""

    status_code = 422
    default_code = "invalid_parameters"


class InvalidSchedules(AppError):
    status_code = 422
    default_code = "invalid_schedules"


class InvalidJobVariables(AppError):
    status_code = 422
    default_code = "invalid_job_variables"


def _check_deployment_job_variables(deployment: Deployment, *, creating: bool) -> None:
    pool = deployment.work_queue.work_pool if deployment.work_queue is not None else None
    if pool is None or not deployment.job_variables:
        return
    try:
        job_variables_check(pool, deployment.job_variables, ignore_required=True)
    except ValueError as error:
        verb = "creating" if creating else "updating"
        raise InvalidJobVariables(f"Error {verb} deployment: {error}") from None


# --- lookups ------------------------------------------------------------------------------------------


def deployment_get(*, deployment_id: uuid.UUID) -> Deployment:
    deployment = (
        Deployment.objects.select_related("work_queue__work_pool", "flow").filter(id=deployment_id).first()
    )
    if deployment is None:
        raise NotFound("Deployment not found")
    return deployment


def deployment_by_name_get(*, flow_name: str, deployment_name: str) -> Deployment:
    deployment = (
        Deployment.objects.select_related("work_queue__work_pool", "flow")
        .filter(flow__name=flow_name, name=deployment_name)
        .first()
    )
    if deployment is None:
        raise NotFound("Deployment not found")
    return deployment


def deployment_status(deployment: Deployment, *, now: dt.datetime) -> str:
    """READY while its runner or a worker of its queue polled within the last minute."""
    polled = deployment.last_polled
    return "READY" if polled is not None and polled >= now - DEPLOYMENT_LAST_POLLED_TIMEOUT else "NOT_READY"


# --- work queues --------------------------------------------------------------------------------------


def _pool_get(name: str) -> WorkPool:
    pool = WorkPool.objects.filter(name=name).first()
    if pool is None:
        raise NotFound(f'Work pool "{name}" not found.')
    return pool


def _queue_in_pool(pool: WorkPool, name: str) -> WorkQueue:
    """The pool's queue of that name, created when missing (as Prefect does for deployments)."""
    queue = WorkQueue.objects.filter(work_pool=pool, name=name).first()
    if queue is None:
        try:
            with transaction.atomic():
                queue = work_queue_create(pool=pool, name=name)
        except Conflict:
            queue = WorkQueue.objects.get(work_pool=pool, name=name)
    queue.work_pool = pool
    return queue


def _default_queue(pool: WorkPool) -> WorkQueue:
    if pool.default_queue_id is not None:
        queue = WorkQueue.objects.filter(id=pool.default_queue_id).first()
        if queue is not None:
            queue.work_pool = pool
            return queue
    return _queue_in_pool(pool, "default")


def _queue_by_name_only(name: str) -> WorkQueue | None:
    """Prefect's ``ensure_work_queue_exists``: the queue of that name in the default agent pool
    (created there when the pool exists), else any queue of that name. Queues here always belong to
    a pool, so without one the deployment keeps only the queue name."""
    agent_pool = WorkPool.objects.filter(name=DEFAULT_AGENT_WORK_POOL_NAME).first()
    if agent_pool is not None:
        return _default_queue(agent_pool) if name == "default" else _queue_in_pool(agent_pool, name)
    queue = WorkQueue.objects.select_related("work_pool").filter(name=name).order_by("created", "id").first()
    return queue


def _resolve_queue(
    *, work_pool_name: str | None, work_queue_name: str | None
) -> tuple[WorkQueue | None, str | None]:
    """``(queue, queue name)`` for a deployment naming a pool and/or a queue."""
    if work_pool_name and work_queue_name:
        return _queue_in_pool(_pool_get(work_pool_name), work_queue_name), work_queue_name
    if work_pool_name:
        queue = _default_queue(_pool_get(work_pool_name))
        return queue, queue.name
    if work_queue_name:
        return _queue_by_name_only(work_queue_name), work_queue_name
    return None, None


# --- events -------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _related(deployment: Deployment) -> list[dict[str, str]]:
    related = [
        {
            "prefect.resource.id": f"prefect.flow.{deployment.flow_id}",
            "prefect.resource.name": deployment.flow.name,
            "prefect.resource.role": "flow",
        }
    ]
    queue = deployment.work_queue
    if queue is not None:
        related.append(
            {
                "prefect.resource.id": f"prefect.work-queue.{queue.id}",
                "prefect.resource.name": queue.name,
                "prefect.resource.role": "work-queue",
            }
        )
        pool = queue.work_pool
        related.append(
            {
                "prefect.resource.id": f"prefect.work-pool.{pool.id}",
                "prefect.resource.name": pool.name,
                "prefect.work-pool.type": pool.type,
                "prefect.resource.role": "work-pool",
            }
        )
    for role, block_id in (
        ("storage", deployment.storage_document_id),
        ("infrastructure", deployment.infrastructure_document_id),
    ):
        if block_id:
            related.append(
                {"prefect.resource.id": f"prefect.block-document.{block_id}", "prefect.resource.role": role}
            )
    return related


def _emit(deployment: Deployment, name: str, *, payload: dict[str, Any] | None = None) -> None:
    event_record_on_commit(
        workspace_id=deployment.workspace_id,
        event={
            "id": str(uuid.uuid4()),
            "occurred": timezone.now().isoformat(),
            "event": f"prefect.deployment.{name}",
            "resource": {
                "prefect.resource.id": f"prefect.deployment.{deployment.id}",
                "prefect.resource.name": deployment.name,
            },
            "related": _related(deployment),
            "payload": payload or {},
        },
    )


def _snapshot(deployment: Deployment) -> dict[str, Any]:
    return {name: copy.deepcopy(getattr(deployment, name)) for name in EVENT_FIELDS}


def _audit_changes(deployment: Deployment, before: dict[str, Any], actor) -> None:
    auditing.record_changes(
        events.DEPLOYMENT_UPDATED, target=deployment, actor=actor, before=before, after=_snapshot(deployment)
    )


def _emit_changes(deployment: Deployment, before: dict[str, Any]) -> None:
    after = _snapshot(deployment)
    changed = {
        name: {"from": before[name], "to": after[name]}
        for name in EVENT_FIELDS
        if before[name] != after[name]
    }
    if changed:
        _emit(deployment, "updated", payload=_jsonable({"updated_fields": list(changed), "updates": changed}))


# --- scheduled runs -----------------------------------------------------------------------------------


def scheduled_runs_delete(
    *, deployment_id: uuid.UUID, auto_scheduled_only: bool = False, future_only: bool = False
) -> int:
    """Delete the deployment's runs that are SCHEDULED and never ran (Prefect's
    ``_delete_scheduled_runs``): runs waiting for a concurrency slot are kept."""
    runs = FlowRun.objects.filter(
        deployment_id=deployment_id, state_type=StateType.SCHEDULED, run_count=0
    ).exclude(state_name="AwaitingConcurrencySlot")
    if auto_scheduled_only:
        runs = runs.filter(auto_scheduled=True)
    if future_only:
        runs = runs.filter(next_scheduled_start_time__gt=timezone.now())
    ids = list(runs.values_list("id", flat=True))
    if ids:
        FlowRun.objects.filter(id__in=ids).delete()
        poll_answers_changed()
    return len(ids)


# --- schedules ----------------------------------------------------------------------------------------


def _schedule_rows(
    deployment: Deployment, schedules: Iterable[DeploymentScheduleCreate | DeploymentScheduleUpdate]
) -> list[DeploymentSchedule]:
    rows = []
    for item in schedules:
        if item.schedule is None:
            continue
        rows.append(
            DeploymentSchedule(
                workspace_id=deployment.workspace_id,
                deployment=deployment,
                schedule=stored_schedule(item.schedule),
                active=item.active if item.active is not None else True,
                max_scheduled_runs=item.max_scheduled_runs,
                parameters=item.parameters or {},
                slug=item.slug,
            )
        )
    return rows


def _schedules_insert(rows: list[DeploymentSchedule]) -> list[DeploymentSchedule]:
    slugs = [row.slug for row in rows if row.slug is not None]
    if len(slugs) != len(set(slugs)):
        raise Conflict("Schedule slugs must be unique within a deployment.")
    try:
        with transaction.atomic():
            for row in rows:
                row.save(force_insert=True)
    except IntegrityError:
        raise Conflict("Schedule slugs must be unique within a deployment.") from None
    return rows


def deployment_schedules_create(
    *, deployment_id: uuid.UUID, schedules: Sequence[DeploymentScheduleCreate]
) -> list[DeploymentSchedule]:
    with transaction.atomic():
        deployment = _locked(deployment_id)
        if deployment is None:
            raise NotFound("Deployment not found.")
        rows = _schedules_insert(_schedule_rows(deployment, schedules))
        Deployment.objects.filter(id=deployment.id).update(updated=timezone.now())
    return rows


def deployment_schedule_update(
    *, deployment_id: uuid.UUID, schedule_id: uuid.UUID, data: DeploymentScheduleUpdate
) -> None:
    """Change the fields sent; the deployment's future auto-scheduled runs are deleted so the
    scheduler recreates them from the new schedule."""
    with transaction.atomic():
        deployment = _locked(deployment_id)
        if deployment is None:
            raise NotFound("Deployment not found.")
        row = DeploymentSchedule.objects.filter(id=schedule_id, deployment=deployment).first()
        if row is None:
            raise NotFound("Schedule not found.")
        _schedule_apply(row, data, stored_schedule)
        scheduled_runs_delete(deployment_id=deployment.id, auto_scheduled_only=True, future_only=True)
        Deployment.objects.filter(id=deployment.id).update(updated=timezone.now())


def _schedule_apply(row: DeploymentSchedule, data: DeploymentScheduleUpdate, stored_schedule) -> None:
    for name in ("active", "max_scheduled_runs", "parameters", "slug"):
        value = getattr(data, name)
        if value is not None:
            setattr(row, name, value)
    if data.schedule is not None:
        row.schedule = stored_schedule(data.schedule)
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        raise Conflict("Schedule slugs must be unique within a deployment.") from None


def deployment_schedule_delete(*, deployment_id: uuid.UUID, schedule_id: uuid.UUID) -> None:
    with transaction.atomic():
        deployment = _locked(deployment_id)
        if deployment is None:
            raise NotFound("Deployment not found.")
        deleted, _ = DeploymentSchedule.objects.filter(id=schedule_id, deployment=deployment).delete()
        if not deleted:
            raise NotFound("Schedule not found.")
        scheduled_runs_delete(deployment_id=deployment.id, auto_scheduled_only=True)
        Deployment.objects.filter(id=deployment.id).update(updated=timezone.now())


def _schedules_replace_by_slug(deployment: Deployment, schedules: Sequence[DeploymentScheduleUpdate]) -> None:
    """Prefect's targeted schedule update, used when every existing and every sent schedule has a
    slug: a schedule whose slug (or ``replaces``) names an existing one patches it, the others are
    created; existing schedules not named are kept."""
    existing = {row.slug: row for row in DeploymentSchedule.objects.filter(deployment=deployment)}
    targets: dict[str, str] = {}
    for item in schedules:
        if item.replaces:
            if item.replaces in targets:
                raise InvalidSchedules(
                    f"Multiple schedules have 'replaces' targeting the same slug: {item.replaces}"
                )
            targets[item.replaces] = item.slug or ""
    for item in schedules:
        if item.slug and item.slug in existing and item.slug not in targets and item.replaces:
            raise InvalidSchedules(
                f"Cannot rename schedule from '{item.replaces}' to '{item.slug}': "
                f"a schedule with slug '{item.slug}' already exists."
            )
    to_patch: list[tuple[DeploymentSchedule, DeploymentScheduleUpdate]] = []
    to_create: list[DeploymentScheduleUpdate] = []
    for item in schedules:
        target = item.replaces or item.slug
        if target in existing:
            to_patch.append((existing[target], item))
        elif item.schedule is not None:
            to_create.append(item)
        else:
            raise InvalidSchedules(
                "Unable to create new deployment schedules without a schedule configuration."
            )
    # Renamed rows let go of their old slug first, so a swap does not trip the unique slug.
    renamed = [row.id for row, item in to_patch if item.replaces]
    if renamed:
        DeploymentSchedule.objects.filter(id__in=renamed).update(slug=None)
    for row, item in to_patch:
        if item.replaces:
            row.slug = None
        _schedule_apply(row, item, stored_schedule)
    _schedules_insert(_schedule_rows(deployment, to_create))


# --- deployments --------------------------------------------------------------------------------------


def _locked(deployment_id: uuid.UUID) -> Deployment | None:
    return (
        Deployment.objects.select_for_update(of=("self",))
        .select_related("work_queue__work_pool", "flow")
        .filter(id=deployment_id)
        .first()
    )


def _ensure_deployment_slot(workspace) -> None:
    """Refuse a deployment beyond the account's plan. The account row is locked so concurrent
    creations in any of its workspaces queue up behind this count."""
    account = Account.objects.select_for_update().get(pk=workspace.account_id)
    # A new deployment is new work: refused (402) while a payment is overdue past its grace.
    ensure_new_work_allowed(account)
    decision = check_deployment(account, deployments_used=deployments_count_for_account(account))
    if not decision:
        raise PlanLimitExceeded(
            f"{decision.reason} The maximum number of deployments for this plan is {decision.limit}.",
            code="deployment_limit",
        )


def _ensure_new_run_allowed(deployment: Deployment) -> None:
    """A run of a deployment is new work, refused (402) while a payment is overdue past its grace
    whichever door asks for it: the API, the UI's Run button, an automation's action."""
    account = Account.objects.only("id", "name", "billing_status", "billing_status_since").get(
        workspaces__id=deployment.workspace_id
    )
    ensure_new_work_allowed(account)


def _system_labels(flow: Flow, deployment_id_labels: dict[str, Any] | None) -> dict[str, Any]:
    """Prefect's ``with_system_labels_for_deployment``: the flow's labels, the flow id, then the
    labels the request sent."""
    return {**(flow.labels or {}), "prefect.flow.id": str(flow.id), **(deployment_id_labels or {})}


def _sync_concurrency_limit(deployment: Deployment, *, removed: bool) -> None:
    if deployment.concurrency_limit is not None:
        deployment_concurrency_limit(deployment=deployment)
    elif removed:
        deployment_concurrency_limit_delete(deployment_id=deployment.id)


_CREATE_FIELDS = (
    "version",
    "description",
    "paused",
    "concurrency_limit",
    "parameters",
    "parameter_openapi_schema",
    "enforce_parameter_schema",
    "job_variables",
    "pull_steps",
    "tags",
    "path",
    "entrypoint",
    "storage_document_id",
    "infrastructure_document_id",
)


class _CreatedConcurrently(Exception):
    """Another request created the same (flow, name) between our read and our insert."""


def deployment_upsert(*, workspace, data: DeploymentCreate, actor=None) -> tuple[Deployment, bool]:
    """Create the deployment, or update the one of this flow with this name: ``(row, created)``.
    Two requests racing to create the same deployment end as one creation and one update."""
    try:
        return _upsert(workspace=workspace, data=data, actor=actor)
    except _CreatedConcurrently:
        return _upsert(workspace=workspace, data=data, actor=actor)


def _upsert(*, workspace, data: DeploymentCreate, actor=None) -> tuple[Deployment, bool]:
    sent = data.model_fields_set
    with transaction.atomic():
        flow = Flow.objects.filter(id=data.flow_id).first()
        if flow is None:
            raise NotFound("Flow not found.")
        deployment = (
            Deployment.objects.select_for_update(of=("self",)).filter(flow=flow, name=data.name).first()
        )
        created = deployment is None
        if created:
            _ensure_deployment_slot(workspace)
            deployment = Deployment(
                id=uuid.uuid4(),
                workspace_id=workspace.pk,
                flow=flow,
                name=data.name,
                created_by=_created_by(actor),
            )
            before = None
            values = {name: getattr(data, name) for name in _CREATE_FIELDS}
        else:
            before = _snapshot(deployment)
            values = {name: getattr(data, name) for name in _CREATE_FIELDS if name in sent}
        if created and "pull_steps" not in sent:
            values["pull_steps"] = []  # Prefect's column default
        if "concurrency_options" in sent or created:
            values["concurrency_options"] = (
                data.concurrency_options.model_dump(mode="json", exclude_unset=True)
                if data.concurrency_options is not None
                else None
            )
        for name, value in values.items():
            if name in ("parameters", "job_variables", "tags") and value is None:
                continue
            setattr(deployment, name, value)
        if created or {"work_pool_name", "work_queue_name"} & sent:
            queue, queue_name = _resolve_queue(
                work_pool_name=data.work_pool_name, work_queue_name=data.work_queue_name
            )
            deployment.work_queue = queue
            deployment.work_queue_name = queue_name
        deployment.labels = _system_labels(flow, data.labels)
        deployment.updated_by = _created_by(actor)
        _check_deployment_job_variables(deployment, creating=created)
        limit_before = None if before is None else before["concurrency_limit"]
        if created:
            try:
                with transaction.atomic():
                    deployment.save(force_insert=True)
            except IntegrityError:
                raise _CreatedConcurrently from None
        else:
            deployment.save()
            scheduled_runs_delete(deployment_id=deployment.id, auto_scheduled_only=True, future_only=True)
            DeploymentSchedule.objects.filter(deployment=deployment).delete()
        _schedules_insert(_schedule_rows(deployment, data.schedules))
        if "concurrency_limit" in sent or created:
            _sync_concurrency_limit(deployment, removed=limit_before is not None)
        if created:
            _emit(deployment, "created")
            auditing.record(
                events.DEPLOYMENT_CREATED, target=deployment, actor=actor, after=_snapshot(deployment)
            )
        else:
            _emit_changes(deployment, before)
            _audit_changes(deployment, before, actor)
    return deployment, created


# A PATCH may set exactly what a create may.
_UPDATE_FIELDS = _CREATE_FIELDS


def deployment_update(*, deployment_id: uuid.UUID, data: DeploymentUpdate, actor=None) -> None:
    """Change the fields sent (PATCH). The deployment's future auto-scheduled runs are deleted.
    Parameters sent are stored with their placeholders expanded (a bad one is a 400 ``Error
    hydrating deployment parameters: …``), as Prefect's server stores them."""
    sent = data.model_fields_set
    with transaction.atomic():
        deployment = _locked(deployment_id)
        if deployment is None:
            raise NotFound("Deployment not found.")
        before = _snapshot(deployment)
        schedules = data.schedules if "schedules" in sent else None
        existing = list(DeploymentSchedule.objects.filter(deployment=deployment))
        provided_have_slugs = all(item.slug is not None for item in schedules or [])
        existing_have_slugs = bool(existing) and all(row.slug is not None for row in existing)
        by_slug = provided_have_slugs and existing_have_slugs
        if not provided_have_slugs and existing_have_slugs:
            raise InvalidSchedules(
                "Please provide a slug for each schedule in your request to ensure schedules are updated "
                "correctly."
            )

        if "parameters" in sent and data.parameters is not None:
            # Prefect's update stores the parameters sent with their placeholders expanded.
            try:
                parameters = (
                    hydrate(data.parameters, variables=_workspace_variables())
                    if has_placeholders(data.parameters)
                    else data.parameters
                )
            except HydrationError as error:
                raise InvalidInput(f"Error hydrating deployment parameters: {error}") from None
        else:
            parameters = deployment.parameters
        enforce = (
            data.enforce_parameter_schema
            if data.enforce_parameter_schema is not None
            else deployment.enforce_parameter_schema
        )
        if enforce:
            schema = data.parameter_openapi_schema or deployment.parameter_openapi_schema
            if not isinstance(schema, dict):
                raise Conflict(
                    "Error updating deployment: Cannot update parameters because parameter schema "
                    "enforcement is enabled and the deployment does not have a valid parameter schema."
                )
            try:
                parameters_check(parameters, schema, ignore_required=True)
            except ValueError as error:
                raise Conflict(f"Error updating deployment: {error}") from None

        limit_before = deployment.concurrency_limit
        for name in _UPDATE_FIELDS:
            if name not in sent:
                continue
            value = parameters if name == "parameters" else getattr(data, name)
            if name in ("parameters", "job_variables", "tags", "paused") and getattr(data, name) is None:
                continue
            setattr(deployment, name, value)
        if "concurrency_options" in sent:
            deployment.concurrency_options = (
                data.concurrency_options.model_dump(mode="json", exclude_unset=True)
                if data.concurrency_options is not None
                else None
            )
        if "labels" in sent:
            deployment.labels = _system_labels(deployment.flow, data.labels)
        if data.work_pool_name:
            queue, queue_name = _resolve_queue(
                work_pool_name=data.work_pool_name, work_queue_name=data.work_queue_name
            )
            deployment.work_queue, deployment.work_queue_name = queue, queue_name
        elif "work_pool_name" in sent:
            # An explicit null pool: runs are no longer routed to a pool (switching to serve).
            deployment.work_queue = None
            if "work_queue_name" in sent:
                deployment.work_queue_name = data.work_queue_name
        elif data.work_queue_name:
            queue, queue_name = _resolve_queue(work_pool_name=None, work_queue_name=data.work_queue_name)
            deployment.work_queue, deployment.work_queue_name = queue, queue_name
        elif "work_queue_name" in sent:
            deployment.work_queue_name = None
        deployment.updated_by = _created_by(actor)
        if "job_variables" in sent or data.work_pool_name:
            _check_deployment_job_variables(deployment, creating=False)
        deployment.save()

        scheduled_runs_delete(deployment_id=deployment.id, auto_scheduled_only=True, future_only=True)
        if by_slug:
            _schedules_replace_by_slug(deployment, schedules or [])
        elif schedules is not None:
            DeploymentSchedule.objects.filter(deployment=deployment).delete()
            _schedules_insert(_schedule_rows(deployment, schedules))
        if "concurrency_limit" in sent:
            _sync_concurrency_limit(deployment, removed=limit_before is not None)
        _emit_changes(deployment, before)
        _audit_changes(deployment, before, actor)


def deployment_set_paused(*, deployment_id: uuid.UUID, paused: bool, actor=None) -> None:
    """``pause_deployment`` / ``resume_deployment``: pausing deletes every auto-scheduled run that
    has not started."""
    with transaction.atomic():
        deployment = _locked(deployment_id)
        if deployment is None:
            raise NotFound("Deployment not found")
        if deployment.paused != paused:
            before = _snapshot(deployment)
            deployment.paused = paused
            deployment.save(update_fields=["paused", "updated"])
            _emit_changes(deployment, before)
            _audit_changes(deployment, before, actor)
        if paused:
            scheduled_runs_delete(deployment_id=deployment.id, auto_scheduled_only=True)


def deployment_delete(*, deployment_id: uuid.UUID, actor=None) -> None:
    """Delete the deployment, its schedules, every scheduled run of it that never ran (auto or
    not) and the concurrency limit behind it."""
    with transaction.atomic():
        deployment = _locked(deployment_id)
        if deployment is None:
            raise NotFound("Deployment not found")
        _delete_locked(deployment, actor=actor)


def _delete_locked(deployment: Deployment, *, actor) -> None:
    account = Account.objects.only("id", "billing_status").get(workspaces__id=deployment.workspace_id)
    read_only_recheck_on_commit(account=account, actor=actor or SYSTEM)  # one fewer may make it fit
    _emit(deployment, "deleted")
    auditing.record(events.DEPLOYMENT_DELETED, target=deployment, actor=actor, before=_snapshot(deployment))
    scheduled_runs_delete(deployment_id=deployment.id)
    deployment_concurrency_limit_delete(deployment_id=deployment.id)
    deployment.delete()


#: Prefect's ``BULK_OPERATION_LIMIT``: at most this many deployments (or flows) per bulk delete.
BULK_DELETE_LIMIT = 50


def deployments_bulk_delete(*, deployment_ids: Sequence[uuid.UUID], actor=None) -> list[uuid.UUID]:
    """Prefect's ``delete_deployments``: each deployment goes as ``deployment_delete`` takes one (its
    scheduled runs, its concurrency limit, a ``prefect.deployment.deleted`` event and an audit
    record each), all in one transaction. The ids deleted, in the order given; ids that are not (or
    no longer) there are skipped."""
    with transaction.atomic():
        rows = {
            row.id: row
            for row in Deployment.objects.select_for_update(of=("self",))
            .select_related("work_queue__work_pool", "flow")
            .filter(id__in=list(deployment_ids))
            .order_by("id")
        }
        deleted = [deployment_id for deployment_id in dict.fromkeys(deployment_ids) if deployment_id in rows]
        for deployment_id in deleted:
            _delete_locked(rows[deployment_id], actor=actor)
    return deleted


# --- runs ---------------------------------------------------------------------------------------------


class _RunRefused(Exception):
    """Why one run of a bulk creation was refused: its ``error`` in Prefect's words."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _workspace_variables() -> dict[str, Any]:
    """Prefect's ``HydrationContext.build(render_workspace_variables=True)``: every variable."""
    return dict(Variable.objects.values_list("name", "value"))


def _hydrated(deployment: Deployment, data: DeploymentFlowRunCreate, variables) -> dict[str, Any]:
    """The deployment's parameters overlaid by the run's, placeholders expanded (``variables`` is a
    callable so the workspace's variables are read only when a placeholder is there)."""
    parameters = {**(deployment.parameters or {}), **data.parameters}
    if not has_placeholders(parameters):
        return parameters
    return hydrate(parameters, variables=variables())


def _checked_parameters(deployment: Deployment, data: DeploymentFlowRunCreate, parameters, *, bulk: bool):
    enforce = (
        data.enforce_parameter_schema
        if data.enforce_parameter_schema is not None
        else deployment.enforce_parameter_schema
    )
    if not enforce:
        return
    schema = deployment.parameter_openapi_schema
    if not isinstance(schema, dict):
        if bulk:
            raise _RunRefused("Parameter schema enforcement is enabled but deployment has no valid schema.")
        raise Conflict(
            "Error updating deployment: Cannot update parameters because parameter schema "
            "enforcement is enabled and the deployment does not have a valid parameter schema."
        )
    try:
        parameters_check(parameters, schema)
    except ValueError as error:
        if bulk:
            raise _RunRefused(f"Parameter validation failed: {error}") from None
        raise Conflict(f"Error creating flow run: {error}") from None


def _run_from_deployment(
    deployment: Deployment, data: DeploymentFlowRunCreate, *, actor, parameters, bulk: bool
) -> tuple[FlowRun, bool]:
    _checked_parameters(deployment, data, parameters, bulk=bulk)
    deployment_pool = deployment.work_queue.work_pool if deployment.work_queue is not None else None
    if deployment_pool is not None:
        try:
            job_variables_check(
                deployment_pool, deployment.job_variables, data.job_variables, ignore_required=False
            )
        except ValueError as error:
            if bulk:
                raise _RunRefused(f"Error creating flow run: {error}") from None
            raise InvalidJobVariables(f"Error creating flow run: {error}") from None

    queue, queue_name = deployment.work_queue, deployment.work_queue_name
    if data.work_queue_name:
        if queue is None:
            if bulk:
                raise _RunRefused(
                    f"Cannot create flow run in work queue {data.work_queue_name} because deployment is not "
                    "associated with a work pool."
                )
            raise InvalidInput(
                f"Cannot create flow run in work queue {data.work_queue_name} because deployment "
                f"{deployment.id} is not associated with a work pool. Please remove work_pool_name and "
                "try again."
            )
        queue, queue_name = _queue_in_pool(queue.work_pool, data.work_queue_name), data.work_queue_name
    pool = queue.work_pool if queue is not None else None

    tags = list(dict.fromkeys([*(deployment.tags or []), *data.tags]))
    state = data.state or StateCreate(type=StateType.SCHEDULED, name="Scheduled")
    return flow_run_create(
        data=FlowRunCreate(
            flow_id=deployment.flow_id,
            name=data.name,
            state=state,
            parameters=parameters,
            context=data.context,
            parent_task_run_id=data.parent_task_run_id,
            infrastructure_document_id=data.infrastructure_document_id
            or deployment.infrastructure_document_id,
            empirical_policy=data.empirical_policy,
            tags=tags,
            labels={**(deployment.labels or {}), **(data.labels or {})},
            idempotency_key=data.idempotency_key,
            work_pool_name=pool.name if pool is not None else None,
            work_queue_name=queue_name,
            job_variables=data.job_variables or {},
            deployment_id=deployment.id,
        ),
        actor=actor,
        work_queue_id=queue.id if queue is not None else None,
        work_pool_id=pool.id if pool is not None else None,
        deployment_version=deployment.version,
    )


def deployment_flow_run_create(
    *, deployment_id: uuid.UUID, data: DeploymentFlowRunCreate, actor=None
) -> tuple[FlowRun, bool]:
    """A run of the deployment: its parameters merged over the deployment's, placeholders expanded
    (``orchestration.schemas.run_hydration``; a bad one is a 400 ``Error hydrating flow run
    parameters: …``) and checked against its schema when enforced (a 409 ``Error creating flow
    run: …``, as Prefect answers), its tags added to the deployment's, in the deployment's work
    queue (or the one named, created in the deployment's pool), SCHEDULED for now unless a state is
    given. ``(run, created)``; an idempotency key already used for this flow gives the existing
    run."""
    with transaction.atomic():
        deployment = deployment_get(deployment_id=deployment_id)
        _ensure_new_run_allowed(deployment)
        try:
            parameters = _hydrated(deployment, data, _workspace_variables)
        except HydrationError as error:
            raise InvalidInput(f"Error hydrating flow run parameters: {error}") from None
        return _run_from_deployment(deployment, data, actor=actor, parameters=parameters, bulk=False)


#: Prefect's ``BULK_CREATE_LIMIT``: at most this many runs per ``create_flow_run/bulk``.
BULK_CREATE_LIMIT = 100


def deployment_flow_runs_bulk_create(
    *, deployment_id: uuid.UUID, items: Sequence[DeploymentFlowRunCreate], actor=None
) -> list[dict[str, Any]]:
    """Prefect's ``create_flow_run/bulk``: each item as ``deployment_flow_run_create`` makes one,
    in one transaction; an item that cannot be made is reported (``status: FAILED`` and Prefect's
    ``error``) and writes nothing, the others go on. One result per item, in order:
    ``{"flow_run_id", "status", "error"}``."""
    if len(items) > BULK_CREATE_LIMIT:
        raise InvalidInput(f"Cannot create more than {BULK_CREATE_LIMIT} flow runs at once.")
    results: list[dict[str, Any]] = []
    with transaction.atomic():
        deployment = deployment_get(deployment_id=deployment_id)
        if not items:
            return results
        _ensure_new_run_allowed(deployment)
        memo: dict[str, dict[str, Any]] = {}

        def variables() -> dict[str, Any]:
            if "all" not in memo:
                memo["all"] = _workspace_variables()
            return memo["all"]

        for item in items:
            try:
                with transaction.atomic():
                    parameters = _hydrated(deployment, item, variables)
                    run, _ = _run_from_deployment(
                        deployment, item, actor=actor, parameters=parameters, bulk=True
                    )
            except (_RunRefused, HydrationError, AppError) as error:
                if isinstance(error, _RunRefused):
                    message = error.error
                else:
                    message = error.message if isinstance(error, AppError) else str(error)
                results.append({"flow_run_id": None, "status": "FAILED", "error": message})
                continue
            results.append({"flow_run_id": str(run.id), "status": "CREATED", "error": None})
    return results


def deployment_scheduled_runs(
    *, deployment_ids: Sequence[uuid.UUID], scheduled_before: dt.datetime | None, limit: int | None
) -> list[FlowRun]:
    """SCHEDULED runs of these deployments due by ``scheduled_before``, earliest first (what a
    runner polls for)."""
    runs = FlowRun.objects.filter(deployment_id__in=list(deployment_ids), state_type=StateType.SCHEDULED)
    if scheduled_before is not None:
        runs = runs.filter(next_scheduled_start_time__lte=scheduled_before)
    runs = runs.select_related("state").order_by("next_scheduled_start_time", "id")
    return list(runs[: 200 if limit is None else limit])


def deployments_record_poll(*, deployment_ids: Sequence[uuid.UUID], now: dt.datetime | None = None) -> None:
    """Stamp ``last_polled`` on polled deployments (at most every few seconds each); a deployment
    that was not READY becomes READY and says so with a ``prefect.deployment.ready`` event."""
    now = now or timezone.now()
    horizon = now - POLL_RECORD_INTERVAL
    stale = Q(last_polled__isnull=True) | Q(last_polled__lt=horizon)
    with transaction.atomic():
        due = (
            Deployment.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("work_queue__work_pool", "flow")
            .filter(stale, id__in=list(deployment_ids))
            .order_by("id")
        )
        rows = list(due)
        if not rows:
            return
        Deployment.objects.filter(id__in=[row.id for row in rows]).update(
            last_polled=now, last_status="READY"
        )
        for row in rows:
            if deployment_status(row, now=now) != "READY":
                _emit(row, "ready")


def schedules_of(deployment_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[DeploymentSchedule]]:
    result: dict[uuid.UUID, list[DeploymentSchedule]] = {}
    for row in DeploymentSchedule.objects.filter(deployment_id__in=list(deployment_ids)).order_by(
        "created", "id"
    ):
        result.setdefault(row.deployment_id, []).append(row)
    return result


__all__ = [
    "DEPLOYMENT_LAST_POLLED_TIMEOUT",
    "InvalidParameters",
    "deployment_by_name_get",
    "deployment_delete",
    "deployment_flow_run_create",
    "deployment_flow_runs_bulk_create",
    "deployments_bulk_delete",
    "deployment_get",
    "deployment_schedule_delete",
    "deployment_schedule_update",
    "deployment_schedules_create",
    "deployment_scheduled_runs",
    "deployment_set_paused",
    "deployment_status",
    "deployment_update",
    "deployment_upsert",
    "deployments_record_poll",
    "scheduled_runs_delete",
    "schedules_of",
]
