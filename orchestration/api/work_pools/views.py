"""Work pools, work queues and workers over the wire (Prefect's ``/work_pools`` and
``/work_queues`` routes), and the poll a worker makes: ``work_pools/{name}/get_scheduled_flow_runs``.

The worker channel websocket (``work_pools/{name}/workers/connect``) is not served: the websocket
router refuses it and the client falls back to REST heartbeats.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from pydantic import ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator
from rest_framework.response import Response

from billing.selectors import ensure_writes_allowed
from core.errors import NotFound, ObjectNotFound
from orchestration.api.base import PrefectApiView, created, no_content, parse_id
from orchestration.api.flow_runs.wire import flow_run_to_wire
from orchestration.api.work_pools.wire import (
    poll_answer_to_wire,
    slot_holder_to_wire,
    work_pool_to_wire,
    work_queue_to_wire,
    worker_to_wire,
)
from orchestration.models import WorkPool, WorkQueue
from orchestration.schemas.base import PrefectModel, iso
from orchestration.selectors.filters import filter_queryset, filtered_page, paging
from orchestration.selectors.work_pools import (
    polled_queues,
    pool_active_slots,
    queue_active_slots,
    scheduled_flow_runs,
    scheduled_flow_runs_for_poll,
    work_pool_get,
    work_pool_slot_holders,
    work_pool_statuses,
    work_pool_with_queues_for_poll,
    work_queue_by_name_get,
    work_queue_get,
    work_queue_health,
    work_queue_in_pool_get,
    work_queue_slot_holders,
    work_queue_status,
    workers_list,
)
from orchestration.services.polls import work_queues_record_poll
from orchestration.services.work_pools import (
    work_pool_create,
    work_pool_delete,
    work_pool_update,
    work_queue_create,
    work_queue_create_without_pool,
    work_queue_delete,
    work_queue_update,
    worker_delete,
    worker_heartbeat,
)

# --- request bodies -----------------------------------------------------------------------------------

_NAME = r"^[^/%&><]+$"  # Prefect's banned characters in names: / % & > <
_PLACEHOLDER = re.compile(r"({{\s*([\w\.\-\[\]$]+)\s*}})")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _non_emptyish(value: str) -> str:
    if not value.strip("' \""):
        raise ValueError("name cannot be an empty string")
    return value


def _base_job_template(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Prefect's check: a template has ``job_configuration`` and ``variables``, and every
    ``{{ placeholder }}`` of the configuration is a property of the variables schema."""
    if not value:
        return value
    job_configuration, variables = value.get("job_configuration"), value.get("variables")
    if not (job_configuration and variables) or not isinstance(job_configuration, dict):
        raise ValueError(
            "The `base_job_template` must contain both a `job_configuration` key and a `variables` key."
        )
    used = {
        name
        for template in job_configuration.values()
        for _, name in _PLACEHOLDER.findall(json.dumps(template))
    }
    declared = set((variables.get("properties") or {}) if isinstance(variables, dict) else {})
    if not used <= declared:
        raise ValueError(
            "The variables specified in the job configuration template must be present as properties in the "
            f"variables schema. Your job configuration uses the following undeclared variable(s): "
            f"{' ,'.join(sorted(used - declared))}."
        )
    return value


class StorageConfiguration(PrefectModel):
    model_config = ConfigDict(extra="forbid")

    bundle_upload_step: dict[str, Any] | None = None
    bundle_execution_step: dict[str, Any] | None = None
    default_result_storage_block_id: uuid.UUID | None = None


class WorkPoolCreate(PrefectModel):
    name: str = Field(pattern=_NAME, max_length=255)
    description: str | None = None
    type: str = Field(default="prefect-agent", max_length=255)
    base_job_template: dict[str, Any] = Field(default_factory=dict)
    is_paused: bool = False
    concurrency_limit: NonNegativeInt | None = None
    storage_configuration: StorageConfiguration = Field(default_factory=StorageConfiguration)

    _name = field_validator("name")(_non_emptyish)
    _template = field_validator("base_job_template")(_base_job_template)


class WorkPoolUpdate(PrefectModel):
    description: str | None = None
    is_paused: bool | None = None
    base_job_template: dict[str, Any] | None = None
    concurrency_limit: NonNegativeInt | None = None
    storage_configuration: StorageConfiguration | None = None

    _template = field_validator("base_job_template")(_base_job_template)


class WorkQueueCreate(PrefectModel):
    name: str = Field(pattern=_NAME, max_length=255)
    description: str | None = ""
    is_paused: bool = False
    concurrency_limit: NonNegativeInt | None = None
    priority: PositiveInt | None = None
    filter: dict[str, Any] | None = None


class WorkQueueUpdate(PrefectModel):
    name: str | None = Field(default=None, pattern=_NAME, max_length=255)
    description: str | None = None
    is_paused: bool = False
    concurrency_limit: NonNegativeInt | None = None
    priority: PositiveInt | None = None
    last_polled: dt.datetime | None = None
    filter: dict[str, Any] | None = None

    _utc = field_validator("last_polled")(_utc)


class WorkerHeartbeat(PrefectModel):
    name: str = Field(min_length=1, max_length=255)
    heartbeat_interval_seconds: NonNegativeInt | None = None
    return_id: bool = False
    # The client sends ``metadata``; accept the schema's name too.
    metadata: dict[str, Any] | None = None
    worker_metadata: dict[str, Any] | None = None


class _WorkerStatusFilter(PrefectModel):
    model_config = ConfigDict(extra="forbid")

    any_: list[Literal["ONLINE", "OFFLINE"]] | None = None
    not_any_: list[Literal["ONLINE", "OFFLINE"]] | None = None


class _HeartbeatTimeFilter(PrefectModel):
    model_config = ConfigDict(extra="forbid")

    before_: dt.datetime | None = None
    after_: dt.datetime | None = None

    _utc = field_validator("before_", "after_")(_utc)


class WorkerFilter(PrefectModel):
    model_config = ConfigDict(extra="forbid")

    operator: Literal["and_", "or_"] = "and_"
    last_heartbeat_time: _HeartbeatTimeFilter | None = None
    status: _WorkerStatusFilter | None = None


class WorkerFilterBody(PrefectModel):
    workers: WorkerFilter | None = None


class GetScheduledFlowRuns(PrefectModel):
    work_queue_names: list[str] | None = None
    # The client sends "YYYY-MM-DD HH:MM:SS.ffffff+00:00" (a space, not a T); pydantic takes both.
    scheduled_before: dt.datetime | None = None
    scheduled_after: dt.datetime | None = None
    limit: int | None = Field(default=None, ge=0, le=200)

    _utc = field_validator("scheduled_before", "scheduled_after")(_utc)


class ConcurrencyStatusQuery(PrefectModel):
    """``work_queues/{id}/concurrency_status`` and ``work_pools/{name}/concurrency_status``: a page
    (from 1) of ``limit`` (0 to 200) slot holders, or queues; ``flow_run_limit`` (0 to 200) runs per
    queue for a pool."""

    page: int = Field(default=1, ge=1, le=1_000_000)
    limit: int = Field(default=200, ge=0, le=200)
    flow_run_limit: int = Field(default=10, ge=0, le=200)


class GetRuns(PrefectModel):
    scheduled_before: dt.datetime | None = None
    limit: int | None = Field(default=None, ge=0, le=200)

    _utc = field_validator("scheduled_before")(_utc)


DEFAULT_LIMIT = 200

# --- responses ----------------------------------------------------------------------------------------


def _pools_wire(pools: Sequence[WorkPool], now: dt.datetime) -> list[dict[str, Any]]:
    statuses = work_pool_statuses(pools, now=now)
    slots = pool_active_slots(pool.id for pool in pools if pool.concurrency_limit is not None)
    return [
        work_pool_to_wire(
            pool,
            status=statuses[pool.id],
            active_slots=slots.get(pool.id, 0) if pool.concurrency_limit is not None else None,
        )
        for pool in pools
    ]


def _queues_wire(queues: Sequence[WorkQueue], now: dt.datetime) -> list[dict[str, Any]]:
    """``queues`` come with their pool loaded (``select_related`` or set by the caller)."""
    slots = queue_active_slots(queue.id for queue in queues if queue.concurrency_limit is not None)
    return [
        work_queue_to_wire(
            queue,
            work_pool_name=queue.work_pool.name if queue.work_pool_id else None,
            status=work_queue_status(queue, now=now),
            active_slots=slots.get(queue.id, 0) if queue.concurrency_limit is not None else None,
        )
        for queue in queues
    ]


def _pool_queues_wire(pool: WorkPool, queues: Sequence[WorkQueue], now: dt.datetime) -> list[dict[str, Any]]:
    for queue in queues:
        queue.work_pool = pool
    return _queues_wire(queues, now)


# --- work pools ---------------------------------------------------------------------------------------


class WorkPoolCreateApi(PrefectApiView):
    required_scopes = {"POST": "write_work_pools"}

    def post(self, request):
        data = self.parse(WorkPoolCreate, self.body())
        # The answer is read before the commit: once the pool is durable, it needs no database.
        with transaction.atomic():
            pool = work_pool_create(
                name=data.name,
                type=data.type,
                description=data.description,
                base_job_template=data.base_job_template,
                is_paused=data.is_paused,
                concurrency_limit=data.concurrency_limit,
                storage_configuration=data.storage_configuration.model_dump(mode="json", exclude_none=True),
                actor=request.user,
            )
            answer = _pools_wire([pool], timezone.now())[0]
        return created(answer)


class WorkPoolDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_work_pools", "PATCH": "write_work_pools", "DELETE": "manage_work_pools"}

    def get(self, request, name: str):
        return Response(_pools_wire([work_pool_get(name=name)], timezone.now())[0])

    def patch(self, request, name: str):
        data = self.parse(WorkPoolUpdate, self.body())
        changes = data.model_dump(mode="json", exclude_unset=True)
        if changes.get("storage_configuration") is not None:
            changes["storage_configuration"] = data.storage_configuration.model_dump(
                mode="json", exclude_none=True
            )
        work_pool_update(name=name, changes=changes, actor=request.user)
        return no_content()

    def delete(self, request, name: str):
        work_pool_delete(name=name, actor=request.user)
        return no_content()


class WorkPoolFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_work_pools"}

    def post(self, request):
        return Response(_pools_wire(list(filtered_page("work_pools", self.body())), timezone.now()))


class WorkPoolCountApi(PrefectApiView):
    required_scopes = {"POST": "see_work_pools"}

    def post(self, request):
        return Response(filter_queryset("work_pools", self.body()).count())


class WorkPoolGetScheduledFlowRunsApi(PrefectApiView):
    """The worker's poll. Records ``last_polled`` on the queues polled and their deployments."""

    required_scopes = {"POST": "see_work_queues"}

    def post(self, request, name: str):
        # A poll stamps the queues and hands out runs to start, all of which a suspended account may
        # no longer do: its workers are told why (402) rather than handed runs they cannot move.
        ensure_writes_allowed(self.account)
        data = self.parse(GetScheduledFlowRuns, self.body())
        pool, queues = work_pool_with_queues_for_poll(name=name)
        polled = polled_queues(pool, queues, data.work_queue_names)
        now = timezone.now()
        runs = scheduled_flow_runs_for_poll(
            pool=pool,
            all_queues=queues,
            polled_queues=polled,
            scheduled_before=data.scheduled_before,
            scheduled_after=data.scheduled_after,
            limit=DEFAULT_LIMIT if data.limit is None else data.limit,
        )
        work_queues_record_poll(queues=polled, now=now)
        return Response(poll_answer_to_wire(runs, pool=pool, now=now))


# --- queues of a pool ---------------------------------------------------------------------------------


class WorkPoolQueueCreateApi(PrefectApiView):
    required_scopes = {"POST": "write_work_queues"}

    def post(self, request, name: str):
        data = self.parse(WorkQueueCreate, self.body())
        pool = work_pool_get(name=name)
        queue = work_queue_create(pool=pool, **data.model_dump())
        return created(_pool_queues_wire(pool, [queue], timezone.now())[0])


class WorkPoolQueueFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_work_queues"}

    def post(self, request, name: str):
        body = self.body()
        pool = work_pool_get(name=name)
        limit, offset = paging(body)
        queues = filter_queryset("work_queues", body).filter(work_pool=pool).order_by("priority", "name")
        return Response(_pool_queues_wire(pool, list(queues[offset : offset + limit]), timezone.now()))


class WorkPoolQueueDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_work_queues", "PATCH": "write_work_queues", "DELETE": "manage_work_queues"}

    def get(self, request, name: str, queue_name: str):
        pool = work_pool_get(name=name)
        queue = work_queue_in_pool_get(pool=pool, name=queue_name)
        return Response(_pool_queues_wire(pool, [queue], timezone.now())[0])

    def patch(self, request, name: str, queue_name: str):
        data = self.parse(WorkQueueUpdate, self.body())
        queue = work_queue_in_pool_get(pool=work_pool_get(name=name), name=queue_name)
        work_queue_update(queue_id=queue.id, changes=data.model_dump(exclude_unset=True))
        return no_content()

    def delete(self, request, name: str, queue_name: str):
        queue = work_queue_in_pool_get(pool=work_pool_get(name=name), name=queue_name)
        work_queue_delete(queue_id=queue.id)
        return no_content()


# --- workers ------------------------------------------------------------------------------------------


class WorkerHeartbeatApi(PrefectApiView):
    """204, or (``return_id``, as Prefect Cloud answers) 200 with the worker's id as plain text."""

    required_scopes = {"POST": "write_workers"}

    def post(self, request, name: str):
        data = self.parse(WorkerHeartbeat, self.body())
        pool = work_pool_get(name=name)
        worker_id = worker_heartbeat(
            pool=pool,
            name=data.name,
            now=timezone.now(),
            heartbeat_interval_seconds=data.heartbeat_interval_seconds,
            metadata=data.metadata if data.metadata is not None else data.worker_metadata,
            return_id=data.return_id,
        )
        if data.return_id:
            return HttpResponse(str(worker_id), status=200, content_type="text/plain")
        return no_content()


class WorkerFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_workers"}

    def post(self, request, name: str):
        body = self.body()
        data = self.parse(WorkerFilterBody, body)
        limit, offset = paging(body)
        pool = work_pool_get(name=name)
        workers = data.workers or WorkerFilter()
        now = timezone.now()
        rows = workers_list(
            pool=pool,
            now=now,
            statuses=workers.status.any_ if workers.status else None,
            not_statuses=workers.status.not_any_ if workers.status else None,
            heartbeat_before=workers.last_heartbeat_time.before_ if workers.last_heartbeat_time else None,
            heartbeat_after=workers.last_heartbeat_time.after_ if workers.last_heartbeat_time else None,
            operator=workers.operator,
            offset=offset,
            limit=limit,
        )
        return Response([worker_to_wire(worker, status=status) for worker, status in rows])


class WorkerDetailApi(PrefectApiView):
    required_scopes = {"DELETE": "manage_workers"}

    def delete(self, request, name: str, worker_name: str):
        worker_delete(pool=work_pool_get(name=name), name=worker_name)
        return no_content()


class WorkPoolConcurrencyStatusApi(PrefectApiView):
    """Prefect's ``work_pools/{name}/concurrency_status``: the runs holding the pool's slots (PENDING
    and RUNNING), per queue for a page of its queues (by priority), up to ``flow_run_limit`` runs
    each."""

    required_scopes = {"POST": "see_work_pools"}

    def post(self, request, name: str):
        data = self.parse(ConcurrencyStatusQuery, self.body())
        pool, queues, count, active, by_queue, runs = work_pool_slot_holders(
            name=name,
            offset=(data.page - 1) * data.limit,
            limit=data.limit,
            flow_run_limit=data.flow_run_limit,
        )
        now = timezone.now()
        return Response(
            {
                "active_slots": active,
                "concurrency_limit": pool.concurrency_limit,
                "queues": [
                    {
                        "queue_id": str(queue.id),
                        "queue_name": queue.name,
                        "active_slots": by_queue.get(queue.id, 0),
                        "concurrency_limit": queue.concurrency_limit,
                        "flow_runs": [slot_holder_to_wire(run, now=now) for run in runs.get(queue.id, [])],
                        "flow_run_count": by_queue.get(queue.id, 0),
                    }
                    for queue in queues
                ],
                **_pages(count, data),
            }
        )


def _pages(count: int, data: ConcurrencyStatusQuery) -> dict[str, int]:
    return {
        "count": count,
        "limit": data.limit,
        "pages": (count + data.limit - 1) // data.limit if data.limit > 0 else 0,
        "page": data.page,
    }


# --- work queues by id --------------------------------------------------------------------------------


class WorkQueueCreateApi(PrefectApiView):
    """Prefect's ``POST work_queues/`` (``prefect work-queue create NAME`` without ``--pool``): the
    queue goes to the workspace's default agent pool, created when missing."""

    required_scopes = {"POST": "write_work_queues"}

    def post(self, request):
        data = self.parse(WorkQueueCreate, self.body())
        with transaction.atomic():
            queue = work_queue_create_without_pool(**data.model_dump(), actor=request.user)
            answer = _queues_wire([queue], timezone.now())[0]
        return created(answer)


class WorkQueueConcurrencyStatusApi(PrefectApiView):
    """Prefect's ``work_queues/{id}/concurrency_status``: the runs holding the queue's slots
    (PENDING, RUNNING, CANCELLING), a page at a time, by id."""

    required_scopes = {"POST": "see_work_queues"}

    def post(self, request, queue_id: str):
        data = self.parse(ConcurrencyStatusQuery, self.body())
        queue, count, page = work_queue_slot_holders(
            queue_id=parse_id(queue_id, "Work queue"), offset=(data.page - 1) * data.limit, limit=data.limit
        )
        now = timezone.now()
        return Response(
            {
                "active_slots": count,
                "concurrency_limit": queue.concurrency_limit,
                "flow_runs": [slot_holder_to_wire(run, now=now) for run in page],
                **_pages(count, data),
            }
        )


class WorkQueueFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_work_queues"}

    def post(self, request):
        body = self.body()
        limit, offset = paging(body)
        queues = filter_queryset("work_queues", body, related=("work_pools",)).select_related("work_pool")
        page = list(queues.order_by("name", "id")[offset : offset + limit])
        return Response(_queues_wire(page, timezone.now()))


class WorkQueueByNameApi(PrefectApiView):
    required_scopes = {"GET": "see_work_queues"}

    def get(self, request, name: str):
        return Response(_queues_wire([work_queue_by_name_get(name=name)], timezone.now())[0])


class WorkQueueDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_work_queues", "PATCH": "write_work_queues", "DELETE": "manage_work_queues"}

    def get(self, request, queue_id: str):
        queue = work_queue_get(queue_id=parse_id(queue_id, "work queue"))
        return Response(_queues_wire([queue], timezone.now())[0])

    def patch(self, request, queue_id: str):
        data = self.parse(WorkQueueUpdate, self.body())
        work_queue_update(
            queue_id=parse_id(queue_id, "work queue"), changes=data.model_dump(exclude_unset=True)
        )
        return no_content()

    def delete(self, request, queue_id: str):
        work_queue_delete(queue_id=parse_id(queue_id, "work queue"))
        return no_content()


def _queue_found_by_model(queue_id: str, missing: str):
    """The queue, or the 404 Prefect's models raise for these routes (``{"exception_message"}``,
    ``missing`` formatted with the id)."""
    queue_uuid = parse_id(queue_id, "work queue")
    try:
        return work_queue_get(queue_id=queue_uuid)
    except NotFound:
        raise ObjectNotFound(missing.format(queue_uuid)) from None


class WorkQueueStatusApi(PrefectApiView):
    required_scopes = {"GET": "see_work_queues"}

    def get(self, request, queue_id: str):
        queue = _queue_found_by_model(queue_id, "Work queue with id {} not found")
        health = work_queue_health(queue, now=timezone.now())
        return Response({**health, "last_polled": iso(health["last_polled"])})


class WorkQueueGetRunsApi(PrefectApiView):
    """Prefect's ``work_queues/{id}/get_runs``: the queue's scheduled runs (its own pause and
    limit apply; the pool's do not), as flow runs. A request from the UI is not a poll."""

    required_scopes = {"POST": "see_work_queues"}

    def post(self, request, queue_id: str):
        data = self.parse(GetRuns, self.body())
        queue = _queue_found_by_model(queue_id, "Work queue with id {} not found.")
        now = timezone.now()
        runs = scheduled_flow_runs(
            pool=queue.work_pool,
            all_queues=[queue],
            polled_queues=[queue],
            scheduled_before=data.scheduled_before,
            scheduled_after=None,
            limit=DEFAULT_LIMIT if data.limit is None else data.limit,
            pool_rules=False,
        )
        if request.headers.get("x-prefect-ui", "").lower() not in ("true", "1"):
            work_queues_record_poll(queues=[queue], now=now)
        return Response([flow_run_to_wire(run, state=run.state, now=now) for run in runs])
