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
* :func:`cancellation_cleanup`: Prefect's ``CancellationCleanup`` service. The unfinished task runs
  of a flow run CANCELLED within the last day are CANCELLED (forced, as Prefect's
  ``cancel_child_task_runs``), and a subflow run still PENDING, SCHEDULED, RUNNING, PAUSED or
  CANCELLING whose parent task run belongs to a CANCELLED flow run is cancelled through the core
  policy (``cancel_subflow_run``): CANCELLING when it has a deployment (its worker or runner tears
  it down), CANCELLED otherwise. Like Prefect's it is periodic, not part of the transition: a
  process killed mid-subflow leaves the subflow RUNNING with nobody left to move it.
* :func:`expired_pauses_fail`: a PAUSED run whose pause is past its ``pause_timeout`` is FAILED
  ("The flow was paused and never resumed.", forced), Prefect's ``FailExpiredPauses``: a suspended
  run's process has exited, so nothing else would ever end it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from core.errors import NotFound
from orchestration.models import Event, FlowRun, TaskRun, Worker, WorkQueue
from orchestration.models.states import TERMINAL_STATE_TYPES, StateType
from orchestration.rules.base import SetStateStatus
from orchestration.schemas.states import StateCreate, StateDetails
from orchestration.services.orchestration import set_flow_run_state, set_task_run_state
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


#: Prefect's message on what the cleanup cancels.
CANCELLED_BY_PARENT = "The parent flow run was cancelled."
#: How far back a CANCELLED flow run's task runs are still swept (Prefect's one day).
CANCELLED_TASK_RUNS_WINDOW = dt.timedelta(days=1)
NON_TERMINAL_STATE_TYPES = [state_type for state_type in StateType if state_type not in TERMINAL_STATE_TYPES]
#: The subflow states Prefect's ``monitor_subflow_runs`` looks at.
CANCELLABLE_SUBFLOW_STATE_TYPES = [
    StateType.PENDING,
    StateType.SCHEDULED,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
]
#: Subflow levels cancelled per sweep (each level's cancellation reveals the next).
MAX_SUBFLOW_DEPTH = 10


def _cancelled_flow_run(*, flow_run_id, workspace_id) -> Exists:
    return Exists(
        FlowRun.objects.unscoped().filter(
            id=flow_run_id, workspace_id=workspace_id, state_type=StateType.CANCELLED
        )
    )


def _task_runs_of_cancelled_runs_cancel(now: dt.datetime) -> int:
    cancelled = 0
    last_id: uuid.UUID | None = None
    recent = FlowRun.objects.unscoped().filter(
        id=OuterRef("flow_run_id"),
        workspace_id=OuterRef("workspace_id"),
        state_type=StateType.CANCELLED,
        end_time__gte=now - CANCELLED_TASK_RUNS_WINDOW,
    )
    while True:
        # Every tenant's orphaned task runs: a deliberate cross-workspace read (.unscoped()).
        candidates = TaskRun.objects.unscoped().filter(
            Exists(recent), flow_run_id__isnull=False, state_type__in=NON_TERMINAL_STATE_TYPES
        )
        if last_id is not None:
            candidates = candidates.filter(id__gt=last_id)
        rows = list(candidates.order_by("id").values_list("id", "workspace_id")[:BATCH_SIZE])
        if not rows:
            return cancelled
        last_id = rows[-1][0]
        for task_run_id, workspace_id in rows:
            with workspace_scope(workspace_id), transaction.atomic():
                run = TaskRun.objects.select_for_update().filter(id=task_run_id).first()
                if run is None or run.state_type not in NON_TERMINAL_STATE_TYPES:
                    continue
                result = set_task_run_state(
                    task_run_id=task_run_id,
                    state=StateCreate(type=StateType.CANCELLED, message=CANCELLED_BY_PARENT),
                    force=True,
                )
                cancelled += result.status == SetStateStatus.ACCEPT and result.written


def _parent_cancelled(run: FlowRun) -> bool:
    """Does the subflow's parent task run belong to a CANCELLED flow run (of its workspace)?"""
    if run.parent_task_run_id is None:
        return False
    flow_run_id = (
        TaskRun.objects.for_workspace(run.workspace_id)
        .filter(id=run.parent_task_run_id)
        .values_list("flow_run_id", flat=True)
        .first()
    )
    return (
        flow_run_id is not None
        and FlowRun.objects.for_workspace(run.workspace_id)
        .filter(id=flow_run_id, state_type=StateType.CANCELLED)
        .exists()
    )


def _subflows_of_cancelled_runs_cancel() -> int:
    cancelled = 0
    last_id: uuid.UUID | None = None
    parent_task_cancelled = Exists(
        TaskRun.objects.unscoped().filter(
            _cancelled_flow_run(flow_run_id=OuterRef("flow_run_id"), workspace_id=OuterRef("workspace_id")),
            id=OuterRef("parent_task_run_id"),
            workspace_id=OuterRef("workspace_id"),
        )
    )
    while True:
        # Every tenant's orphaned subflows: a deliberate cross-workspace read (.unscoped()).
        candidates = FlowRun.objects.unscoped().filter(
            parent_task_cancelled,
            parent_task_run_id__isnull=False,
            state_type__in=CANCELLABLE_SUBFLOW_STATE_TYPES,
        )
        if last_id is not None:
            candidates = candidates.filter(id__gt=last_id)
        rows = list(
            candidates.order_by("id").values_list("id", "workspace_id", "deployment_id", "state_type")[
                :BATCH_SIZE
            ]
        )
        if not rows:
            return cancelled
        last_id = rows[-1][0]
        for run_id, workspace_id, deployment_id, state_type in rows:
            if deployment_id is not None and state_type == StateType.CANCELLING:
                continue  # its worker or runner is tearing it down already
            target = StateType.CANCELLING if deployment_id is not None else StateType.CANCELLED

            def still_due(run: FlowRun) -> bool:
                return (
                    run.state_type in CANCELLABLE_SUBFLOW_STATE_TYPES
                    and not (run.deployment_id is not None and run.state_type == StateType.CANCELLING)
                    and _parent_cancelled(run)
                )

            cancelled += _change(
                workspace_id=workspace_id,
                run_id=run_id,
                still_due=still_due,
                state=StateCreate(type=target, message=CANCELLED_BY_PARENT),
                force=False,
            )


def cancellation_cleanup(*, now: dt.datetime | None = None) -> int:
    """Cancel what a cancelled flow run leaves running; returns how many runs were cancelled.
    A cancelled subflow's own subflows and task runs follow in the same sweep."""
    now = now or timezone.now()
    total = 0
    for _ in range(MAX_SUBFLOW_DEPTH):
        subflows = _subflows_of_cancelled_runs_cancel()
        total += subflows + _task_runs_of_cancelled_runs_cancel(now)
        if not subflows:
            break
    return total


PAUSE_EXPIRED_MESSAGE = "The flow was paused and never resumed."


def _pause_timeout(run: FlowRun) -> dt.datetime | None:
    details = run.state.state_details if run.state is not None else None
    return StateDetails.model_validate(details or {}).pause_timeout


def expired_pauses_fail(*, now: dt.datetime | None = None) -> int:
    """Fail PAUSED runs whose pause timed out; returns how many were failed."""
    now = now or timezone.now()
    failed = 0
    last_id: uuid.UUID | None = None
    while True:
        # Every tenant's paused runs: a deliberate cross-workspace read (.unscoped()).
        candidates = FlowRun.objects.unscoped().filter(state_type=StateType.PAUSED).select_related("state")
        if last_id is not None:
            candidates = candidates.filter(id__gt=last_id)
        runs = list(candidates.order_by("id")[:BATCH_SIZE])
        if not runs:
            return failed
        last_id = runs[-1].id
        for candidate in runs:
            timeout = _pause_timeout(candidate)
            if timeout is None or timeout >= now:
                continue

            def still_due(run: FlowRun) -> bool:
                timeout = _pause_timeout(run) if run.state_type == StateType.PAUSED else None
                return timeout is not None and timeout < now

            failed += _change(
                workspace_id=candidate.workspace_id,
                run_id=candidate.id,
                still_due=still_due,
                state=StateCreate(type=StateType.FAILED, message=PAUSE_EXPIRED_MESSAGE),
                force=True,
            )


__all__ = [
    "cancellation_cleanup",
    "cancelling_runs_finish",
    "expired_pauses_fail",
    "late_runs_mark",
    "zombie_runs_mark_crashed",
]
