"""Reading work pools, work queues and workers, and what a polling worker is given.

Statuses are derived when read, never stored, as Prefect's server reports them:

* a worker is ONLINE while its last heartbeat is younger than its heartbeat interval (30 s when
  it sent none) × ``settings.WORKER_OFFLINE_HEARTBEAT_MULTIPLE``, else OFFLINE;
* a pool is PAUSED when paused, READY when one of its workers is ONLINE, else NOT_READY (a
  ``prefect-agent`` pool has no status);
* a queue is PAUSED when paused, READY when polled within
  ``WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS`` (60 s), else NOT_READY.

Runs in PENDING, RUNNING or CANCELLING occupy a concurrency slot of their queue and its pool.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, F, IntegerField, Q, Value, When, Window
from django.db.models.functions import RowNumber

from core.errors import NotFound
from orchestration.models import FlowRun, Worker, WorkPool, WorkQueue
from orchestration.models.states import StateType
from tenants.scoping import current_workspace_id

ACTIVE_STATE_TYPES = (StateType.PENDING, StateType.RUNNING, StateType.CANCELLING)
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 30
AGENT_POOL_TYPE = "prefect-agent"
DEFAULT_AGENT_WORK_POOL_NAME = "default-agent-pool"


def _work_queue_timeout() -> dt.timedelta:
    return dt.timedelta(seconds=settings.WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS)


# --- lookups ------------------------------------------------------------------------------------------


def work_pool_get(*, name: str) -> WorkPool:
    pool = WorkPool.objects.filter(name=name).first()
    if pool is None:
        raise NotFound(f'Work pool "{name}" not found.')
    return pool


# A worker's poll reads its pool and queues every time; many workers poll one pool. They are
# remembered per process for POOL_MEMO_SECONDS (a change made in this process drops them at once;
# one made in another process is seen within that time).
POOL_MEMO_SECONDS = 1.0
_pool_memo: dict[tuple, tuple[float, WorkPool, list[WorkQueue]]] = {}


def pool_memo_clear(**kwargs) -> None:
    _pool_memo.clear()
    _poll_answers.clear()


def work_pool_with_queues_remembered(
    *, name: str, ahead: float = 0.0
) -> tuple[WorkPool, list[WorkQueue], bool] | None:
    """``work_pool_with_queues_for_poll`` from memory alone, or None; with whether it expires
    within ``ahead`` seconds (to be refreshed ahead with ``refresh=True``)."""
    hit = _pool_memo.get((current_workspace_id(), name))
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1], hit[2], hit[0] - now <= ahead
    return None


def work_pool_with_queues_for_poll(*, name: str, refresh: bool = False) -> tuple[WorkPool, list[WorkQueue]]:
    """``work_pool_with_queues_get``, remembered briefly (see ``POOL_MEMO_SECONDS``)."""
    hit = None if refresh else work_pool_with_queues_remembered(name=name)
    if hit is not None:
        return hit[0], hit[1]
    key = (current_workspace_id(), name)
    now = time.monotonic()
    pool, queues = work_pool_with_queues_get(name=name)
    if len(_pool_memo) > 10_000:
        _pool_memo.clear()
    _pool_memo[key] = (now + POOL_MEMO_SECONDS, pool, queues)
    return pool, queues


def work_pool_with_queues_get(*, name: str) -> tuple[WorkPool, list[WorkQueue]]:
    """The pool and its queues (highest priority first) in one query: the start of every poll."""
    queues = list(
        WorkQueue.objects.select_related("work_pool")
        .filter(work_pool__name=name)
        .order_by("priority", "name")
    )
    if queues:
        return queues[0].work_pool, queues
    return work_pool_get(name=name), []


def work_queue_in_pool_get(*, pool: WorkPool, name: str) -> WorkQueue:
    queue = WorkQueue.objects.filter(work_pool=pool, name=name).first()
    if queue is None:
        raise NotFound(f"Work pool queue '{pool.name}/{name}' not found.")
    queue.work_pool = pool
    return queue


def work_queue_get(*, queue_id: uuid.UUID) -> WorkQueue:
    queue = WorkQueue.objects.select_related("work_pool").filter(id=queue_id).first()
    if queue is None:
        raise NotFound("work queue not found")
    return queue


def work_queue_by_name_get(*, name: str) -> WorkQueue:
    """Prefect's ``work_queues/name/{name}``: the queue of that name in the default agent pool if
    there is one, else the oldest queue of that name in any pool."""
    queues = WorkQueue.objects.select_related("work_pool").filter(name=name)
    queue = queues.filter(work_pool__name=DEFAULT_AGENT_WORK_POOL_NAME).first()
    if queue is None:
        queue = queues.order_by("created", "id").first()
    if queue is None:
        raise NotFound("work queue not found")
    return queue


def work_queues_for_deployment(*, deployment) -> list[WorkQueue]:
    """Prefect's ``check_work_queues_for_deployment``: the queues whose (deprecated) ``filter``
    would pick up the deployment: its ``tags`` are missing, empty or all among the deployment's, and
    its ``deployment_ids`` are missing, empty or include the deployment. Queues without a filter
    match. In creation order."""
    tags = set(deployment.tags or [])
    matching = []
    for queue in WorkQueue.objects.order_by("created", "id"):
        criteria = queue.filter if isinstance(queue.filter, dict) else {}
        wanted_tags = criteria.get("tags")
        wanted_ids = criteria.get("deployment_ids")
        if wanted_tags and not (isinstance(wanted_tags, list) and set(map(str, wanted_tags)) <= tags):
            continue
        if wanted_ids and not (isinstance(wanted_ids, list) and str(deployment.id) in map(str, wanted_ids)):
            continue
        matching.append(queue)
    return matching


# --- statuses -----------------------------------------------------------------------------------------


def worker_is_online(
    last_heartbeat_time: dt.datetime | None, heartbeat_interval_seconds: int | None, *, now: dt.datetime
) -> bool:
    if last_heartbeat_time is None:
        return False
    interval = heartbeat_interval_seconds or DEFAULT_HEARTBEAT_INTERVAL_SECONDS
    horizon = now - dt.timedelta(seconds=interval * settings.WORKER_OFFLINE_HEARTBEAT_MULTIPLE)
    return last_heartbeat_time > horizon


def worker_status(worker: Worker, *, now: dt.datetime) -> str:
    online = worker_is_online(worker.last_heartbeat_time, worker.heartbeat_interval_seconds, now=now)
    return "ONLINE" if online else "OFFLINE"


def work_pool_statuses(pools: Sequence[WorkPool], *, now: dt.datetime) -> dict[uuid.UUID, str | None]:
    """Each pool's status, with one query for the workers of every unpaused pool."""
    statuses: dict[uuid.UUID, str | None] = {}
    pending = []
    for pool in pools:
        if pool.type == AGENT_POOL_TYPE:
            statuses[pool.id] = None
        elif pool.is_paused:
            statuses[pool.id] = "PAUSED"
        else:
            statuses[pool.id] = "NOT_READY"
            pending.append(pool.id)
    if pending:
        heartbeats = Worker.objects.filter(work_pool_id__in=pending, last_heartbeat_time__isnull=False)
        for pool_id, last, interval in heartbeats.values_list(
            "work_pool_id", "last_heartbeat_time", "heartbeat_interval_seconds"
        ):
            if worker_is_online(last, interval, now=now):
                statuses[pool_id] = "READY"
    return statuses


def work_queue_status(queue: WorkQueue, *, now: dt.datetime) -> str:
    if queue.is_paused:
        return "PAUSED"
    if queue.last_polled is not None and now - queue.last_polled <= _work_queue_timeout():
        return "READY"
    return "NOT_READY"


def work_queue_health(queue: WorkQueue, *, now: dt.datetime) -> dict:
    """Prefect's ``WorkQueueStatusDetail``: healthy without Late runs and polled within 60 s."""
    late = FlowRun.objects.filter(work_queue_id=queue.id, state_name="Late").count()
    recent = queue.last_polled is not None and (now - queue.last_polled).total_seconds() <= 60
    return {
        "healthy": late == 0 and recent,
        "late_runs_count": late,
        "last_polled": queue.last_polled,
        "health_check_policy": {"maximum_late_runs": 0, "maximum_seconds_since_last_polled": 60},
    }


# --- concurrency slots --------------------------------------------------------------------------------


def queue_active_slots(queue_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Runs occupying a slot, per queue (one query; queues without any are absent)."""
    queue_ids = list(queue_ids)
    if not queue_ids:
        return {}
    rows = (
        FlowRun.objects.filter(work_queue_id__in=queue_ids, state_type__in=ACTIVE_STATE_TYPES)
        .order_by()
        .values("work_queue_id")
        .annotate(n=Count("id"))
    )
    return {row["work_queue_id"]: row["n"] for row in rows}


def pool_active_slots(pool_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Runs occupying a slot, per pool: the sum over the pool's queues (two queries)."""
    pool_ids = list(pool_ids)
    if not pool_ids:
        return {}
    pool_of_queue = dict(
        WorkQueue.objects.filter(work_pool_id__in=pool_ids).values_list("id", "work_pool_id")
    )
    totals = dict.fromkeys(pool_ids, 0)
    for queue_id, count in queue_active_slots(pool_of_queue).items():
        totals[pool_of_queue[queue_id]] += count
    return totals


#: Prefect's states that hold a slot, for a pool (its scheduler counts PENDING and RUNNING) and for
#: a queue (its scheduler counts CANCELLING too): ``concurrency_status`` reports these.
POOL_SLOT_STATE_TYPES = (StateType.PENDING, StateType.RUNNING)
QUEUE_SLOT_STATE_TYPES = (StateType.PENDING, StateType.RUNNING, StateType.CANCELLING)
_SLOT_FIELDS = ("id", "name", "state_type", "state_name", "start_time", "state_timestamp", "work_queue_id")


def work_queue_slot_holders(
    *, queue_id: uuid.UUID, offset: int, limit: int
) -> tuple[WorkQueue, int, list[dict]]:
    """Prefect's ``count_work_queue_slot_holders`` / ``get_work_queue_slot_holders``: the runs of
    the queue (by id, or by its name for runs that have no queue id) in a slot-holding state, by
    id. ``(queue, total, the page)``; each run is a dict of its summary fields."""
    queue = WorkQueue.objects.filter(id=queue_id).first()
    if queue is None:
        raise NotFound("Work queue not found.")
    runs = FlowRun.objects.filter(
        Q(work_queue_id=queue.id) | Q(work_queue_id__isnull=True, work_queue_name=queue.name),
        state_type__in=QUEUE_SLOT_STATE_TYPES,
    )
    page = list(runs.order_by("id").values(*_SLOT_FIELDS)[offset : offset + limit])
    return queue, runs.count(), page


def work_pool_slot_holders(
    *, name: str, offset: int, limit: int, flow_run_limit: int
) -> tuple[WorkPool, list[WorkQueue], int, int, dict[uuid.UUID, int], dict[uuid.UUID, list[dict]]]:
    """Prefect's pool ``concurrency_status`` reads: the pool, a page of its queues (by priority),
    how many queues there are, the runs holding a slot in the pool, per queue, and up to
    ``flow_run_limit`` of them (by id) per queue of the page."""
    pool = WorkPool.objects.filter(name=name).first()
    if pool is None:
        raise NotFound(f"Work pool {name!r} not found.")
    queues = WorkQueue.objects.filter(work_pool=pool)
    page = list(queues.order_by("priority", "id")[offset : offset + limit])
    holders = FlowRun.objects.filter(
        work_queue_id__in=queues.values("id"), state_type__in=POOL_SLOT_STATE_TYPES
    )
    by_queue = {
        row["work_queue_id"]: row["n"]
        for row in holders.order_by().values("work_queue_id").annotate(n=Count("id"))
    }
    runs: dict[uuid.UUID, list[dict]] = {}
    if page and flow_run_limit:
        rows = (
            holders.filter(work_queue_id__in=[queue.id for queue in page])
            .annotate(
                position=Window(RowNumber(), partition_by=[F("work_queue_id")], order_by=[F("id").asc()])
            )
            .order_by("id")
            .values(*_SLOT_FIELDS, "position")
        )
        for row in rows:
            if row["position"] <= flow_run_limit:
                runs.setdefault(row["work_queue_id"], []).append(row)
    return pool, page, queues.count(), sum(by_queue.values()), by_queue, runs


# --- lists --------------------------------------------------------------------------------------------


def workers_list(
    *,
    pool: WorkPool,
    now: dt.datetime,
    statuses: Sequence[str] | None = None,
    not_statuses: Sequence[str] | None = None,
    heartbeat_before: dt.datetime | None = None,
    heartbeat_after: dt.datetime | None = None,
    operator: str = "and_",
    offset: int = 0,
    limit: int | None = None,
) -> list[tuple[Worker, str]]:
    """The pool's workers matching a Prefect ``WorkerFilter``, newest heartbeat first, with their
    status. Status is derived, so the filter is applied to the pool's rows here."""
    workers = Worker.objects.filter(work_pool=pool).order_by(
        F("last_heartbeat_time").desc(nulls_last=True), "id"
    )
    result = []
    for worker in workers:
        status = worker_status(worker, now=now)
        last = worker.last_heartbeat_time
        checks = []
        if statuses is not None:
            checks.append(status in statuses)
        if not_statuses:
            checks.append(status not in not_statuses)
        if heartbeat_before is not None:
            checks.append(last is not None and last <= heartbeat_before)
        if heartbeat_after is not None:
            checks.append(last is not None and last >= heartbeat_after)
        if not checks or (any(checks) if operator == "or_" else all(checks)):
            result.append((worker, status))
    end = None if limit is None else offset + limit
    return result[offset:end]


# --- polling ------------------------------------------------------------------------------------------


def scheduled_flow_runs(
    *,
    pool: WorkPool,
    all_queues: Sequence[WorkQueue],
    polled_queues: Sequence[WorkQueue],
    scheduled_before: dt.datetime | None,
    scheduled_after: dt.datetime | None,
    limit: int,
    pool_rules: bool = True,
) -> list[FlowRun]:
    """SCHEDULED runs of ``polled_queues`` a worker may start now, as Prefect's
    ``get_scheduled_flow_runs`` gives them: nothing from a paused pool or paused queue; no more
    than the free slots of each queue and of the pool; higher-priority queues first, then the
    earliest scheduled start. ``all_queues`` are every queue of the pool (the pool's slots count
    the runs of all of them). Without ``pool_rules`` the pool's pause and limit do not apply
    (Prefect's ``work_queues/{id}/get_runs``). At most two queries."""
    if (pool_rules and pool.is_paused) or limit <= 0:
        return []
    eligible = [queue for queue in polled_queues if not queue.is_paused]
    if not eligible:
        return []
    caps: dict[uuid.UUID, int] = {}
    pool_limit = pool.concurrency_limit if pool_rules else None
    if pool_limit is not None or any(q.concurrency_limit is not None for q in eligible):
        active = queue_active_slots(queue.id for queue in all_queues)
        if pool_limit is not None:
            limit = min(limit, max(0, pool_limit - sum(active.values())))
        for queue in eligible:
            if queue.concurrency_limit is not None:
                caps[queue.id] = max(0, queue.concurrency_limit - active.get(queue.id, 0))
        eligible = [queue for queue in eligible if caps.get(queue.id, 1) > 0]
    if not eligible or limit <= 0:
        return []

    runs = FlowRun.objects.filter(state_type=StateType.SCHEDULED, work_queue_id__in=[q.id for q in eligible])
    if scheduled_before is not None:
        runs = runs.filter(next_scheduled_start_time__lte=scheduled_before)
    if scheduled_after is not None:
        runs = runs.filter(next_scheduled_start_time__gte=scheduled_after)
    # A run awaiting an in-process retry belongs to the process already running it.
    runs = runs.exclude(empirical_policy__retry_type="in_process")
    if len({q.priority for q in eligible}) > 1:
        priority = Case(
            *[When(work_queue_id=q.id, then=Value(q.priority)) for q in eligible], output_field=IntegerField()
        )
        runs = runs.annotate(queue_priority=priority)
        order = ["queue_priority", "next_scheduled_start_time", "id"]
    else:
        order = ["next_scheduled_start_time", "id"]
    if caps:
        cap = Case(
            *[When(work_queue_id=queue_id, then=Value(free)) for queue_id, free in caps.items()],
            default=Value(limit),
            output_field=IntegerField(),
        )
        rank = Window(
            RowNumber(),
            partition_by=[F("work_queue_id")],
            order_by=[F("next_scheduled_start_time").asc(), F("id").asc()],
        )
        runs = runs.annotate(queue_cap=cap, queue_rank=rank).filter(queue_rank__lte=F("queue_cap"))
    return list(runs.select_related("state").order_by(*order)[:limit])


# Many workers polling one pool ask the same question many times a second. The runs a poll finds are
# remembered per process for POLL_ANSWER_SECONDS, a little past the horizon asked for
# (POLL_ANSWER_MARGIN) and a few more than the limit asked for; a later poll is answered from them
# when that is exact: its ``scheduled_before`` is within the remembered horizon and either every
# run up to that horizon was remembered or enough remain after filtering by its own horizon (the
# remembered runs are a prefix of the full order, so the first ``limit`` of them that qualify are
# the first ``limit`` that qualify at all). A change to any flow run made in this process drops
# them at once (``poll_answers_changed``); one made elsewhere is seen within POLL_ANSWER_SECONDS,
# the same race two workers polling at once have: the losing worker's PENDING proposal is refused.
# A pool or queue with a concurrency limit is never answered from memory, since its free slots
# change with every run that starts.
POLL_ANSWER_SECONDS = 0.5
POLL_ANSWER_MARGIN = dt.timedelta(seconds=2)
POLL_ANSWER_MAX_LIMIT = 200
_poll_answers: dict[tuple, tuple[float, dt.datetime, bool, list[FlowRun]]] = {}


def poll_answers_changed(**kwargs) -> None:
    """Forget the remembered poll answers of this process (a flow run was written): now, and again
    when the transaction commits, so a poll in between cannot keep what was read before."""
    _poll_answers.clear()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(_poll_answers.clear)


def polled_queues(
    pool: WorkPool, queues: Sequence[WorkQueue], names: Sequence[str] | None
) -> list[WorkQueue]:
    """The queues a poll names (all of the pool's when it names none); an unknown name is a 404."""
    if not names:
        return list(queues)
    by_name = {queue.name: queue for queue in queues}
    for queue_name in names:
        if queue_name not in by_name:
            raise NotFound(f"Work pool queue '{pool.name}/{queue_name}' not found.")
    return [by_name[queue_name] for queue_name in dict.fromkeys(names)]


def _poll_answer_key(pool, all_queues, polled_queues, scheduled_before, scheduled_after, limit):
    """The memo key of a poll, or None when the poll is never answered from memory."""
    limited = pool.concurrency_limit is not None or any(q.concurrency_limit is not None for q in all_queues)
    if limited or scheduled_before is None or not 0 < limit <= POLL_ANSWER_MAX_LIMIT:
        return None
    return (current_workspace_id(), pool.id, tuple(q.id for q in polled_queues), scheduled_after)


def _remembered_answer(key, scheduled_before: dt.datetime, limit: int, ahead: float = 0.0):
    """``(runs, refresh_soon)`` from memory, or None."""
    hit = _poll_answers.get(key)
    if hit is None:
        return None
    expires, horizon, complete, runs = hit
    now = time.monotonic()
    if expires <= now or scheduled_before > horizon:
        return None
    due = [run for run in runs if run.next_scheduled_start_time <= scheduled_before]
    if complete or len(due) >= limit:
        # Refresh ahead when the entry is about to expire, or its horizon is about to be passed.
        soon = expires - now <= ahead or scheduled_before + dt.timedelta(seconds=ahead) > horizon
        return due[:limit], soon
    return None


def scheduled_flow_runs_remembered(
    *,
    pool: WorkPool,
    all_queues: Sequence[WorkQueue],
    polled_queues: Sequence[WorkQueue],
    scheduled_before: dt.datetime | None,
    scheduled_after: dt.datetime | None,
    limit: int,
    ahead: float = 0.0,
) -> tuple[list[FlowRun], bool] | None:
    """``scheduled_flow_runs_for_poll`` from memory alone, or None; with whether it expires within
    ``ahead`` seconds (to be refreshed ahead with ``refresh=True``)."""
    key = _poll_answer_key(pool, all_queues, polled_queues, scheduled_before, scheduled_after, limit)
    return None if key is None else _remembered_answer(key, scheduled_before, limit, ahead)


def scheduled_flow_runs_for_poll(
    *,
    pool: WorkPool,
    all_queues: Sequence[WorkQueue],
    polled_queues: Sequence[WorkQueue],
    scheduled_before: dt.datetime | None,
    scheduled_after: dt.datetime | None,
    limit: int,
    refresh: bool = False,
) -> list[FlowRun]:
    """``scheduled_flow_runs`` for a worker's poll, answered from memory when exact (see above);
    with ``refresh``, read afresh and remembered."""
    query = {
        "pool": pool,
        "all_queues": all_queues,
        "polled_queues": polled_queues,
        "scheduled_after": scheduled_after,
    }
    key = _poll_answer_key(pool, all_queues, polled_queues, scheduled_before, scheduled_after, limit)
    if key is None:
        return scheduled_flow_runs(**query, scheduled_before=scheduled_before, limit=limit)
    remembered = None if refresh else _remembered_answer(key, scheduled_before, limit)
    if remembered is not None:
        return remembered[0]
    horizon = scheduled_before + POLL_ANSWER_MARGIN
    fetch = max(2 * limit, 50)
    runs = scheduled_flow_runs(**query, scheduled_before=horizon, limit=fetch)
    if len(_poll_answers) > 10_000:
        _poll_answers.clear()
    complete = len(runs) < fetch
    _poll_answers[key] = (time.monotonic() + POLL_ANSWER_SECONDS, horizon, complete, runs)
    due = [run for run in runs if run.next_scheduled_start_time <= scheduled_before]
    if complete or len(due) >= limit:
        return due[:limit]
    return scheduled_flow_runs(**query, scheduled_before=scheduled_before, limit=limit)


__all__ = [
    "poll_answers_changed",
    "polled_queues",
    "ACTIVE_STATE_TYPES",
    "pool_active_slots",
    "queue_active_slots",
    "scheduled_flow_runs",
    "scheduled_flow_runs_for_poll",
    "scheduled_flow_runs_remembered",
    "work_pool_get",
    "work_pool_with_queues_for_poll",
    "work_pool_with_queues_get",
    "work_pool_with_queues_remembered",
    "work_pool_statuses",
    "work_queue_by_name_get",
    "work_queue_get",
    "work_queue_health",
    "work_queue_in_pool_get",
    "work_queue_status",
    "worker_status",
    "workers_list",
]
