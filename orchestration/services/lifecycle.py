"""Sweeps that move runs nobody else will move: late runs, zombie runs, abandoned cancellations.

Each sweep crosses tenants on purpose: it finds candidates with one ``.unscoped()`` query, then
changes each run inside its workspace's scope through ``set_flow_run_state`` (the only way a run's
state changes), after re-checking the run under its row lock, so a run that moved on meanwhile
(started, finished, sent a heartbeat) is left alone.

* :func:`late_runs_mark`: a SCHEDULED run ("Scheduled") more than ``LATE_RUN_AFTER_SECONDS`` past
  its scheduled time becomes SCHEDULED "Late" (Prefect's ``MarkLateRuns``; the core policy's
  ``EnsureOnlyScheduledFlowsMarkedLate`` governs it).
* :func:`zombie_runs_mark_crashed`: a RUNNING flow run with neither a ``prefect.flow-run.heartbeat``
  event nor a state change for ``FLOW_RUN_HEARTBEAT_TIMEOUT_SECONDS`` is CRASHED (what Prefect's
  zombie-detection automation does).
* :func:`cancelling_runs_finish`: a CANCELLING run older than ``CANCELLING_TIMEOUT_SECONDS`` that
  nothing can tear down any more (no work pool, no infrastructure pid, or no ONLINE worker in its
  pool) is CANCELLED.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import NotFound
from orchestration.models import Event, FlowRun, Worker, WorkQueue
from orchestration.models.states import StateType
from orchestration.rules.base import SetStateStatus
from orchestration.schemas.states import StateCreate, StateDetails
from orchestration.services.orchestration import set_flow_run_state
from tenants.scoping import workspace_scope

logger = logging.getLogger(__name__)

#: Runs handled per candidate query (Prefect's late-runs batch).
BATCH_SIZE = 400
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
DEFAULT_WORKER_HEARTBEAT_SECONDS = 30


def _flow_run_resource(run_id: uuid.UUID | str) -> str:
    return f"prefect.flow-run.{run_id}"


def _change(
    *,
    workspace_id: uuid.UUID,
    run_id: uuid.UUID,
    still_due: Callable[[FlowRun], bool],
    state: StateCreate,
    force: bool,
) -> bool:
    """In the run's workspace, under its row lock: if ``still_due(run)``, propose ``state``.
    True when a new state was written."""
    with workspace_scope(workspace_id), transaction.atomic():
        run = FlowRun.objects.select_for_update(of=("self",)).filter(id=run_id).first()
        if run is None or not still_due(run):
            return False
        try:
            result = set_flow_run_state(flow_run_id=run_id, state=state, force=force)
        except NotFound:
            return False
        return result.status == SetStateStatus.ACCEPT and result.written


def late_runs_mark(*, now: dt.datetime | None = None) -> int:
    """Mark late runs; returns how many were marked."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.LATE_RUN_AFTER_SECONDS)
    marked = 0
    last_id: uuid.UUID | None = None
    while True:
        # Every tenant's late runs: a deliberate cross-workspace read (.unscoped()).
        candidates = FlowRun.objects.unscoped().filter(
            state_type=StateType.SCHEDULED, state_name="Scheduled", next_scheduled_start_time__lte=cutoff
        )
        if last_id is not None:
            candidates = candidates.filter(id__gt=last_id)
        rows = list(
            candidates.order_by("id").values_list("id", "workspace_id", "next_scheduled_start_time")[
                :BATCH_SIZE
            ]
        )
        if not rows:
            return marked
        last_id = rows[-1][0]
        for run_id, workspace_id, scheduled_time in rows:
            late = StateCreate(
                type=StateType.SCHEDULED,
                name="Late",
                state_details=StateDetails(scheduled_time=scheduled_time),
            )
            marked += _change(
                workspace_id=workspace_id,
                run_id=run_id,
                still_due=lambda run: run.state_type == StateType.SCHEDULED and run.state_name == "Scheduled",
                state=late,
                force=False,
            )


def _recent_heartbeats(workspace_id: uuid.UUID, run_ids: list[uuid.UUID], since: dt.datetime) -> set[str]:
    """Resource ids of the runs that sent a heartbeat since ``since``."""
    if not run_ids:
        return set()
    return set(
        Event.objects.for_workspace(workspace_id)
        .filter(
            Q(occurred__gte=since) | Q(received__gte=since),
            event=HEARTBEAT_EVENT,
            resource_id__in=[_flow_run_resource(run_id) for run_id in run_ids],
        )
        .values_list("resource_id", flat=True)
        .distinct()
    )


def zombie_runs_mark_crashed(*, now: dt.datetime | None = None) -> int:
    """Crash RUNNING flow runs that went silent; returns how many were crashed."""
    now = now or timezone.now()
    timeout = settings.FLOW_RUN_HEARTBEAT_TIMEOUT_SECONDS
    cutoff = now - dt.timedelta(seconds=timeout)
    message = (
        "Flow run marked as crashed due to missing heartbeats: no heartbeat and no state change for "
        f"{timeout} seconds."
    )
    crashed = 0
    last_id: uuid.UUID | None = None
    while True:
        # Every tenant's long-silent runs: a deliberate cross-workspace read (.unscoped()).
        candidates = FlowRun.objects.unscoped().filter(
            state_type=StateType.RUNNING, state_timestamp__lt=cutoff
        )
        if last_id is not None:
            candidates = candidates.filter(id__gt=last_id)
        rows = list(candidates.order_by("id").values_list("id", "workspace_id")[:BATCH_SIZE])
        if not rows:
            return crashed
        last_id = rows[-1][0]
        by_workspace: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for run_id, workspace_id in rows:
            by_workspace[workspace_id].append(run_id)
        for workspace_id, run_ids in by_workspace.items():
            alive = _recent_heartbeats(workspace_id, run_ids, cutoff)
            for run_id in run_ids:
                if _flow_run_resource(run_id) in alive:
                    continue

                def still_due(run: FlowRun, workspace_id=workspace_id) -> bool:
                    return (
                        run.state_type == StateType.RUNNING
                        and run.state_timestamp is not None
                        and run.state_timestamp < cutoff
                        and not _recent_heartbeats(workspace_id, [run.id], cutoff)
                    )

                crashed += _change(
                    workspace_id=workspace_id,
                    run_id=run_id,
                    still_due=still_due,
                    state=StateCreate(type=StateType.CRASHED, name="Crashed", message=message),
                    force=True,
                )


def _online_pools(pool_ids: set[uuid.UUID], now: dt.datetime) -> set[uuid.UUID]:
    """Pools with at least one ONLINE worker (heartbeat younger than its interval × the offline
    multiple). Cross-tenant like the sweep it serves (``.unscoped()``), keyed by pool id."""
    if not pool_ids:
        return set()
    online: set[uuid.UUID] = set()
    multiple = settings.WORKER_OFFLINE_HEARTBEAT_MULTIPLE
    workers = Worker.objects.unscoped().filter(
        work_pool_id__in=list(pool_ids), last_heartbeat_time__isnull=False
    )
    for pool_id, beat, interval in workers.values_list(
        "work_pool_id", "last_heartbeat_time", "heartbeat_interval_seconds"
    ):
        seconds = (interval or DEFAULT_WORKER_HEARTBEAT_SECONDS) * multiple
        if beat > now - dt.timedelta(seconds=seconds):
            online.add(pool_id)
    return online


def cancelling_runs_finish(*, now: dt.datetime | None = None) -> int:
    """Cancel CANCELLING runs that nothing will finish; returns how many were cancelled."""
    now = now or timezone.now()
    timeout = settings.CANCELLING_TIMEOUT_SECONDS
    cutoff = now - dt.timedelta(seconds=timeout)
    finished = 0
    last_id: uuid.UUID | None = None
    while True:
        # Every tenant's stuck cancellations: a deliberate cross-workspace read (.unscoped()).
        candidates = FlowRun.objects.unscoped().filter(
            state_type=StateType.CANCELLING, state_timestamp__lt=cutoff
        )
        if last_id is not None:
            candidates = candidates.filter(id__gt=last_id)
        rows = list(
            candidates.order_by("id").values_list(
                "id", "workspace_id", "work_pool_id", "work_queue_id", "infrastructure_pid"
            )[:BATCH_SIZE]
        )
        if not rows:
            return finished
        last_id = rows[-1][0]
        queue_pools = dict(
            WorkQueue.objects.unscoped()
            .filter(id__in={row[3] for row in rows if row[3] is not None})
            .values_list("id", "work_pool_id")
        )
        pool_of = {row[0]: row[2] or queue_pools.get(row[3]) for row in rows}
        online = _online_pools({pool for pool in pool_of.values() if pool is not None}, now)
        for run_id, workspace_id, _pool, _queue, pid in rows:
            pool_id = pool_of[run_id]
            if pool_id is not None and pid and pool_id in online:
                continue  # A live worker can still tear it down.
            if pool_id is None:
                why = "it has no work pool"
            elif not pid:
                why = "it has no infrastructure to stop"
            else:
                why = "no worker of its work pool is online"
            message = f"Flow run was cancelled: it was cancelling for over {timeout} seconds and {why}."

            def still_due(run: FlowRun) -> bool:
                return (
                    run.state_type == StateType.CANCELLING
                    and run.state_timestamp is not None
                    and (run.state_timestamp < cutoff)
                )

            finished += _change(
                workspace_id=workspace_id,
                run_id=run_id,
                still_due=still_due,
                state=StateCreate(type=StateType.CANCELLED, name="Cancelled", message=message),
                force=True,
            )


__all__ = ["cancelling_runs_finish", "late_runs_mark", "zombie_runs_mark_crashed"]
