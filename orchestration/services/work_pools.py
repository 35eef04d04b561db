"""Writing work pools, work queues and workers, and recording a worker's poll.

Semantics follow Prefect's server (``models/workers.py``): a pool is created with a queue named
``default``; queue priorities stay unique and sequential inside a pool (giving a queue a taken
priority moves the others down); pools whose name starts with "prefect" are reserved; a heartbeat
upserts the worker by (pool, name). Deleting a pool deletes its queues and workers; deployments of
a deleted queue keep running without it (``Deployment.work_queue`` is SET_NULL).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit import events
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from orchestration.models import Worker, WorkPool, WorkQueue
from orchestration.services import auditing
from tenants.scoping import current_workspace_id

DEFAULT_QUEUE_NAME = "default"
DEFAULT_QUEUE_DESCRIPTION = "The work pool's default queue."
#: A poll is recorded (queue and deployment ``last_polled``) at most this often per row, so that
#: many workers polling one pool do not all write the same rows.
POLL_RECORD_INTERVAL = dt.timedelta(seconds=5)

_POOL_FIELDS = ("description", "is_paused", "base_job_template", "concurrency_limit", "storage_configuration")
_POOL_NOT_NULL = ("is_paused", "base_job_template", "storage_configuration")
_QUEUE_FIELDS = ("name", "description", "is_paused", "concurrency_limit", "priority", "last_polled", "filter")
_QUEUE_NOT_NULL = ("name", "is_paused", "priority")


def _reserved(name: str) -> bool:
    return name.lower().startswith("prefect")


# --- pools --------------------------------------------------------------------------------------------


def work_pool_create(
    *,
    name: str,
    type: str,  # noqa: A002 - Prefect's field name
    description: str | None = None,
    base_job_template: dict[str, Any] | None = None,
    is_paused: bool = False,
    concurrency_limit: int | None = None,
    storage_configuration: dict[str, Any] | None = None,
    actor=None,
) -> WorkPool:
    """A new pool with its ``default`` queue. A taken name is a Conflict (409)."""
    if _reserved(name):
        raise Forbidden("Work pools starting with 'Prefect' are reserved for internal use.")
    workspace_id = current_workspace_id()
    try:
        with transaction.atomic():
            pool = WorkPool.objects.create(
                workspace_id=workspace_id,
                name=name,
                type=type,
                description=description,
                base_job_template=base_job_template or {},
                is_paused=is_paused,
                concurrency_limit=concurrency_limit,
                storage_configuration=storage_configuration or {},
            )
            queue = WorkQueue.objects.create(
                workspace_id=workspace_id,
                work_pool=pool,
                name=DEFAULT_QUEUE_NAME,
                description=DEFAULT_QUEUE_DESCRIPTION,
                priority=1,
            )
            pool.default_queue = queue
            pool.save(update_fields=["default_queue", "updated"])
            auditing.record(events.WORK_POOL_CREATED, target=pool, actor=actor, after=_pool_snapshot(pool))
    except IntegrityError:
        raise Conflict("A work pool with this name already exists.") from None
    return pool


def _pool_snapshot(pool: WorkPool) -> dict[str, Any]:
    return {
        "name": pool.name,
        "type": pool.type,
        "description": pool.description,
        "is_paused": pool.is_paused,
        "concurrency_limit": pool.concurrency_limit,
        "base_job_template": pool.base_job_template,
    }


def work_pool_update(*, name: str, changes: dict[str, Any], actor=None) -> WorkPool:
    """Apply the fields given (``None`` clears the nullable ones, and is ignored for the others)."""
    if _reserved(name) and set(changes) - {"is_paused", "concurrency_limit"}:
        raise Forbidden(
            "Work pools starting with 'Prefect' are reserved for internal use and can only be updated to "
            "set concurrency limits or pause."
        )
    with transaction.atomic():
        pool = WorkPool.objects.select_for_update().filter(name=name).first()
        if pool is None:
            raise NotFound(f'Work pool "{name}" not found.')
        before = _pool_snapshot(pool)
        for field in _POOL_FIELDS:
            if field not in changes or (changes[field] is None and field in _POOL_NOT_NULL):
                continue
            setattr(pool, field, changes[field])
        pool.save()
        after = _pool_snapshot(pool)
        if after != before:
            auditing.record(events.WORK_POOL_UPDATED, target=pool, actor=actor, before=before, after=after)
    return pool


def work_pool_delete(*, name: str, actor=None) -> None:
    if _reserved(name):
        raise Forbidden(
            "Work pools starting with 'Prefect' are reserved for internal use and can not be deleted."
        )
    with transaction.atomic():
        pool = WorkPool.objects.filter(name=name).first()
        if pool is None:
            raise NotFound(f'Work pool "{name}" not found.')
        auditing.record(events.WORK_POOL_DELETED, target=pool, actor=actor, before=_pool_snapshot(pool))
        # Cascades to its queues and workers; deployments of those queues lose the link.
        pool.delete()


# --- queues -------------------------------------------------------------------------------------------


def _first_free_priority(taken: list[int]) -> int:
    for index, priority in enumerate(sorted(taken)):
        if index + 1 != priority:
            return index + 1
    return max(taken, default=0) + 1


def _renumber_priorities(*, pool_id: uuid.UUID, wanted: dict[uuid.UUID, int], now: dt.datetime) -> None:
    """Give the queues in ``wanted`` their priority and shift the others (in order) so priorities
    in the pool stay unique, changing as few as possible (Prefect's
    ``bulk_update_work_queue_priorities``). The caller holds the pool's lock."""
    queues = list(WorkQueue.objects.filter(work_pool_id=pool_id).order_by("priority", "created", "id"))
    before = {queue.id: queue.priority for queue in queues}
    ordered = [queue for queue in queues if queue.id not in wanted]
    for queue in sorted((q for q in queues if q.id in wanted), key=lambda q: wanted[q.id]):
        queue.priority = wanted[queue.id]
        position = next(
            (i for i, other in enumerate(ordered) if other.priority >= queue.priority), len(ordered)
        )
        ordered.insert(position, queue)
    last = 0
    for queue in ordered:
        if queue.priority <= last:
            last += 1
            queue.priority = last
        else:
            last = queue.priority
    changed = [queue for queue in ordered if queue.priority != before[queue.id]]
    for queue in changed:
        queue.updated = now
    if changed:
        WorkQueue.objects.bulk_update(changed, ["priority", "updated"])


def work_queue_create(
    *,
    pool: WorkPool,
    name: str,
    description: str | None = "",
    is_paused: bool = False,
    concurrency_limit: int | None = None,
    priority: int | None = None,
    filter: dict | None = None,  # noqa: A002 - Prefect's (deprecated) field name
) -> WorkQueue:
    """A new queue in ``pool``: without a priority it takes the first free one; with a taken one,
    the queues from there on move down."""
    try:
        with transaction.atomic():
            # The pool's lock serialises priority changes inside the pool.
            WorkPool.objects.select_for_update().filter(id=pool.id).first()
            taken = list(WorkQueue.objects.filter(work_pool=pool).values_list("priority", flat=True))
            queue = WorkQueue.objects.create(
                workspace_id=pool.workspace_id,
                work_pool=pool,
                name=name,
                description=description,
                is_paused=is_paused,
                concurrency_limit=concurrency_limit,
                priority=priority if priority is not None else _first_free_priority(taken),
                filter=filter,
            )
            if priority is not None:
                _renumber_priorities(pool_id=pool.id, wanted={queue.id: priority}, now=timezone.now())
                queue.refresh_from_db()
    except IntegrityError:
        raise Conflict(f"A work queue with this name already exists in work pool {pool.name!r}.") from None
    queue.work_pool = pool
    return queue


DEFAULT_AGENT_WORK_POOL_NAME = "default-agent-pool"
AGENT_POOL_TYPE = "prefect-agent"


def work_queue_create_without_pool(
    *,
    name: str,
    description: str | None = "",
    is_paused: bool = False,
    concurrency_limit: int | None = None,
    priority: int | None = None,
    filter: dict | None = None,  # noqa: A002 - Prefect's (deprecated) field name
    actor=None,
) -> WorkQueue:
    """Prefect's ``POST work_queues/`` (``models.work_queues.create_work_queue`` without a pool):
    the queue goes to the workspace's ``default-agent-pool``, which is created (with its
    ``default`` queue) when missing; asking for ``default`` then is that queue. A name the pool
    already has is a Conflict (409)."""
    with transaction.atomic():
        pool = WorkPool.objects.filter(name=DEFAULT_AGENT_WORK_POOL_NAME).first()
        if pool is None:
            try:
                pool = work_pool_create(name=DEFAULT_AGENT_WORK_POOL_NAME, type=AGENT_POOL_TYPE, actor=actor)
            except Conflict:
                # Another request created it first.
                pool = WorkPool.objects.get(name=DEFAULT_AGENT_WORK_POOL_NAME)
            else:
                if name == DEFAULT_QUEUE_NAME:
                    queue = WorkQueue.objects.get(id=pool.default_queue_id)
                    queue.work_pool = pool
                    return queue
        try:
            return work_queue_create(
                pool=pool,
                name=name,
                description=description,
                is_paused=is_paused,
                concurrency_limit=concurrency_limit,
                priority=priority,
                filter=filter,
            )
        except Conflict:
            raise Conflict("A work queue with this name already exists.") from None


def work_queue_update(*, queue_id: uuid.UUID, changes: dict[str, Any]) -> None:
    try:
        with transaction.atomic():
            queue = WorkQueue.objects.select_related("work_pool").filter(id=queue_id).first()
            if queue is None:
                raise NotFound("work queue not found")
            WorkPool.objects.select_for_update().filter(id=queue.work_pool_id).first()
            queue = WorkQueue.objects.select_for_update().get(id=queue_id)
            for field in _QUEUE_FIELDS:
                if field not in changes or (changes[field] is None and field in _QUEUE_NOT_NULL):
                    continue
                setattr(queue, field, changes[field])
            queue.save()
            if changes.get("priority") is not None:
                _renumber_priorities(
                    pool_id=queue.work_pool_id, wanted={queue.id: changes["priority"]}, now=timezone.now()
                )
    except IntegrityError:
        raise Conflict("A work queue with this name already exists in this work pool.") from None


def work_queue_delete(*, queue_id: uuid.UUID) -> None:
    """Delete a queue other than its pool's default; its deployments lose the link."""
    with transaction.atomic():
        queue = WorkQueue.objects.select_related("work_pool").filter(id=queue_id).first()
        if queue is None:
            raise NotFound("work queue not found")
        if queue.work_pool.default_queue_id == queue.id:
            raise InvalidInput("Can't delete a pool's default queue.")
        queue.delete()


# --- workers ------------------------------------------------------------------------------------------


def worker_heartbeat(
    *,
    pool: WorkPool,
    name: str,
    now: dt.datetime,
    heartbeat_interval_seconds: int | None = None,
    metadata: dict | None = None,
    return_id: bool = False,
) -> uuid.UUID | None:
    """Record that worker ``name`` of ``pool`` is alive (created on its first heartbeat). One
    UPDATE for a known worker; the worker's id when ``return_id``."""
    values: dict[str, Any] = {"last_heartbeat_time": now}
    if heartbeat_interval_seconds is not None:
        values["heartbeat_interval_seconds"] = heartbeat_interval_seconds
    if metadata is not None:
        values["metadata"] = metadata
    workers = Worker.objects.filter(work_pool=pool, name=name)
    if not workers.update(**values, updated=now):
        try:
            with transaction.atomic():
                worker = Worker.objects.create(
                    workspace_id=pool.workspace_id, work_pool=pool, name=name, **values
                )
            return worker.id if return_id else None
        except IntegrityError:
            # A concurrent first heartbeat of the same worker won.
            workers.update(**values, updated=now)
    if return_id:
        return workers.values_list("id", flat=True).first()
    return None


def worker_delete(*, pool: WorkPool, name: str) -> None:
    deleted, _ = Worker.objects.filter(work_pool=pool, name=name).delete()
    if not deleted:
        raise NotFound("Worker not found.")


# --- polls --------------------------------------------------------------------------------------------


def _record_due(queues: Sequence[WorkQueue], now: dt.datetime) -> list[uuid.UUID]:
    horizon = now - POLL_RECORD_INTERVAL
    return [queue.id for queue in queues if queue.last_polled is None or queue.last_polled < horizon]


def work_queues_poll_record_due(*, queues: Sequence[WorkQueue], now: dt.datetime) -> bool:
    """Would ``work_queues_record_poll`` (``orchestration.services.polls``) write anything now?"""
    return bool(_record_due(queues, now))


def work_queues_stamp_polled(*, queues: Sequence[WorkQueue], now: dt.datetime) -> list[uuid.UUID]:
    """Stamp ``last_polled`` on the polled queues; the ids of the queues stamped.

    A queue stamped within ``POLL_RECORD_INTERVAL`` is left alone (no query at all when every
    polled queue is fresh), and rows another poll is stamping right now are skipped (``SKIP
    LOCKED`` on PostgreSQL), so many workers polling one pool neither queue up on the same rows nor
    deadlock."""
    horizon = now - POLL_RECORD_INTERVAL
    due = _record_due(queues, now)
    if not due:
        return []
    stale = Q(last_polled__isnull=True) | Q(last_polled__lt=horizon)
    with transaction.atomic():
        locked = (
            WorkQueue.objects.filter(stale, id__in=due).order_by("id").select_for_update(skip_locked=True)
        )
        queue_ids = list(locked.values_list("id", flat=True))
        if queue_ids:
            WorkQueue.objects.filter(id__in=queue_ids).update(last_polled=now, updated=now)
    # The polled queues may be remembered for the next polls (see work_pool_with_queues_for_poll):
    # they now carry the stamp, so those polls do not try again.
    for queue in queues:
        if queue.id in due:
            queue.last_polled = now
    return queue_ids
