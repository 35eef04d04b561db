"""Writing task runs over HTTP (Prefect's ``models/task_runs.py``), and the delivery of background
task runs to task workers (Prefect's ``task_queue.py`` and ``task_workers.py``, kept in the
database so every server process shares them).

A task run's id is the same row whoever writes it first: this API (``task_run_create``) or the
event recorder (``events.recorder``, from the client's task-run events). An id held by another
workspace is never touched. State changes go through ``set_task_run_state``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import Conflict, NotFound
from orchestration.models import FlowRun, TaskRun, TaskWorker
from orchestration.models.states import StateType
from orchestration.names import generate_run_name
from orchestration.schemas.states import StateCreate
from orchestration.schemas.task_runs import TaskRunCreate, TaskRunUpdate
from orchestration.services.orchestration import set_task_run_state
from tenants.rls import across_workspaces
from tenants.scoping import current_workspace_id

#: A run sent to a worker that has not acknowledged it after this long is sent again.
DELIVERY_ACK_TIMEOUT = dt.timedelta(seconds=30)


def _existing(data: TaskRunCreate) -> TaskRun | None:
    return TaskRun.objects.filter(
        flow_run_id=data.flow_run_id, task_key=data.task_key, dynamic_key=data.dynamic_key
    ).first()


def task_run_create(*, data: TaskRunCreate, actor=None) -> tuple[TaskRun, bool]:
    """A new task run in its initial state (Pending unless given; set with ``force``, so a
    deferred Scheduled state queues it for task workers): ``(run, created)``. A run of the same
    flow run with the same ``task_key`` and ``dynamic_key`` (or, outside a flow run, the same keys)
    comes back instead, as does a run with the same id in this workspace."""
    workspace_id = current_workspace_id()
    labels: dict = {}
    if data.flow_run_id is not None:
        flow_run = FlowRun.objects.filter(id=data.flow_run_id).first()
        if flow_run is None:
            raise NotFound("Flow run not found.")
        labels = {**(flow_run.labels or {}), "prefect.flow-run.id": str(data.flow_run_id)}
    labels = {**labels, **(data.labels or {})}

    if data.id is not None:
        owner = TaskRun.objects.unscoped().filter(id=data.id).values_list("workspace_id", flat=True).first()
        if owner is not None:
            if owner != workspace_id:
                raise Conflict("A task run with this id already exists.")
            return TaskRun.objects.get(id=data.id), False
    existing = _existing(data)
    if existing is not None:
        return existing, False

    run = TaskRun(
        id=data.id or uuid.uuid4(),
        workspace_id=workspace_id,
        name=data.name or generate_run_name(),
        flow_run_id=data.flow_run_id,
        task_key=data.task_key,
        dynamic_key=data.dynamic_key,
        cache_key=data.cache_key,
        cache_expiration=data.cache_expiration,
        task_version=data.task_version,
        empirical_policy=data.empirical_policy.model_dump(mode="json"),
        tags=data.tags,
        labels=labels,
        task_inputs=data.task_inputs,
    )
    try:
        with transaction.atomic():
            run.save(force_insert=True)
            state = data.state or StateCreate(type=StateType.PENDING, name="Pending")
            set_task_run_state(task_run_id=run.id, state=state, force=True, actor=actor)
    except IntegrityError:
        # A concurrent request (or the event recorder) wrote the same run first.
        existing = _existing(data) or (TaskRun.objects.filter(id=data.id).first() if data.id else None)
        if existing is None:
            # Another workspace's run holds the id (row-level security hid it from the look-up
            # above): look past it to answer the conflict.
            with across_workspaces():
                taken = data.id is not None and TaskRun.objects.unscoped().filter(id=data.id).exists()
            if taken:
                raise Conflict("A task run with this id already exists.") from None
            raise
        return existing, False
    return TaskRun.objects.get(id=run.id), True


def task_run_update(*, task_run_id: uuid.UUID, data: TaskRunUpdate) -> None:
    changes = data.model_dump(exclude_unset=True)
    with transaction.atomic():
        run = TaskRun.objects.select_for_update().filter(id=task_run_id).first()
        if run is None:
            raise NotFound("Task run not found")
        if changes.get("name"):
            run.name = changes["name"]
        run.save()


def task_run_delete(*, task_run_id: uuid.UUID) -> None:
    deleted, _ = TaskRun.objects.filter(id=task_run_id).delete()
    if not deleted:
        raise NotFound("Task not found")


# --- delivery to task workers -------------------------------------------------------------------


def _deliverable(task_keys: Iterable[str], now: dt.datetime):
    return TaskRun.objects.filter(
        Q(delivery_client_id__isnull=True) | Q(delivery_claimed_at__lt=now - DELIVERY_ACK_TIMEOUT),
        task_key__in=list(task_keys),
        delivery_queued_at__isnull=False,
        state_type=StateType.SCHEDULED,
    )


def task_run_claim_delivery(*, task_keys: list[str], client_id: str) -> TaskRun | None:
    """The oldest queued background task run of ``task_keys`` nobody holds, now held for
    ``client_id`` until it acknowledges (or releases) it; ``None`` when there is none. A run held
    longer than ``DELIVERY_ACK_TIMEOUT`` without an acknowledgement is up for grabs again."""
    now = timezone.now()
    for _attempt in range(5):
        candidate = (
            _deliverable(task_keys, now).order_by("delivery_queued_at").values_list("id", flat=True).first()
        )
        if candidate is None:
            return None
        # The claim is a conditional update: of two workers racing for one run, one wins.
        claimed = (
            _deliverable(task_keys, now)
            .filter(id=candidate)
            .update(delivery_client_id=client_id[:255], delivery_claimed_at=now)
        )
        if claimed:
            return TaskRun.objects.get(id=candidate)
    return None


def task_run_delivery_acknowledged(*, task_run_id: uuid.UUID, client_id: str) -> None:
    """The worker has the run: it leaves the queue."""
    TaskRun.objects.filter(id=task_run_id, delivery_client_id=client_id[:255]).update(
        delivery_queued_at=None, delivery_claimed_at=None
    )


def task_run_delivery_release(*, task_run_id: uuid.UUID, client_id: str) -> None:
    """The worker vanished before acknowledging: the run goes back to the queue (Prefect's
    retry queue)."""
    TaskRun.objects.filter(
        id=task_run_id, delivery_client_id=client_id[:255], delivery_queued_at__isnull=False
    ).update(delivery_client_id=None, delivery_claimed_at=None)


def task_worker_observe(*, identifier: str, task_keys: list[str]) -> None:
    """Record that the task worker ``identifier`` is connected and serves ``task_keys``."""
    identifier = identifier[:255]
    now = timezone.now()
    updated = TaskWorker.objects.filter(identifier=identifier).update(task_keys=task_keys, last_seen=now)
    if not updated:
        try:
            with transaction.atomic():
                TaskWorker.objects.create(
                    workspace_id=current_workspace_id(),
                    identifier=identifier,
                    task_keys=task_keys,
                    last_seen=now,
                )
        except IntegrityError:
            TaskWorker.objects.filter(identifier=identifier).update(task_keys=task_keys, last_seen=now)


def task_worker_forget(*, identifier: str) -> None:
    TaskWorker.objects.filter(identifier=identifier[:255]).delete()
