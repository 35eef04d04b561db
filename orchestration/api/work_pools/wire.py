"""Work pools, work queues and workers → Prefect's response shapes (``WorkPoolResponse``,
``WorkQueueResponse``, ``WorkerResponse``, ``WorkerFlowRunResponse``). Statuses and active slots are
derived by ``orchestration.selectors.work_pools`` and passed in."""

from __future__ import annotations

import datetime as dt
from typing import Any

from orchestration.api.flow_runs.wire import flow_run_to_wire
from orchestration.schemas.base import iso

STORAGE_CONFIGURATION_DEFAULTS = {
    "bundle_upload_step": None,
    "bundle_execution_step": None,
    "default_result_storage_block_id": None,
}


def storage_configuration_to_wire(value: dict | None) -> dict[str, Any]:
    return {**STORAGE_CONFIGURATION_DEFAULTS, **(value or {})}


def work_pool_to_wire(pool, *, status: str | None, active_slots: int | None) -> dict[str, Any]:
    return {
        "id": str(pool.id),
        "created": iso(pool.created),
        "updated": iso(pool.updated),
        "name": pool.name,
        "description": pool.description,
        "type": pool.type,
        "base_job_template": pool.base_job_template or {},
        "is_paused": pool.is_paused,
        "concurrency_limit": pool.concurrency_limit,
        "status": status,
        "default_queue_id": str(pool.default_queue_id) if pool.default_queue_id else None,
        "storage_configuration": storage_configuration_to_wire(pool.storage_configuration),
        "active_slots": active_slots,
    }


def work_queue_to_wire(
    queue, *, work_pool_name: str | None, status: str | None, active_slots: int | None
) -> dict[str, Any]:
    return {
        "id": str(queue.id),
        "created": iso(queue.created),
        "updated": iso(queue.updated),
        "name": queue.name,
        "description": queue.description,
        "is_paused": queue.is_paused,
        "concurrency_limit": queue.concurrency_limit,
        "priority": queue.priority,
        "work_pool_id": str(queue.work_pool_id) if queue.work_pool_id else None,
        "filter": queue.filter,
        "last_polled": iso(queue.last_polled),
        "work_pool_name": work_pool_name,
        "status": status,
        "active_slots": active_slots,
    }


def work_queue_core_to_wire(queue) -> dict[str, Any]:
    """Prefect's ``schemas.core.WorkQueue`` (what ``work_queue_check`` answers): the queue without
    its pool's name, status or active slots."""
    return {
        key: value
        for key, value in work_queue_to_wire(
            queue, work_pool_name=None, status=None, active_slots=None
        ).items()
        if key not in ("work_pool_name", "status", "active_slots")
    }


def slot_holder_to_wire(run: dict[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    """Prefect's ``FlowRunSlotSummary`` of a run's summary fields (``time_in_current_state`` in
    seconds, as Prefect serialises a timedelta)."""
    since = run["state_timestamp"]
    return {
        "id": str(run["id"]),
        "name": run["name"],
        "state_type": run["state_type"] or None,
        "state_name": run["state_name"] or None,
        "start_time": iso(run["start_time"]),
        "state_timestamp": iso(since),
        "time_in_current_state": (now - since).total_seconds() if since is not None else None,
    }


def worker_to_wire(worker, *, status: str) -> dict[str, Any]:
    return {
        "id": str(worker.id),
        "created": iso(worker.created),
        "updated": iso(worker.updated),
        "name": worker.name,
        "work_pool_id": str(worker.work_pool_id),
        "last_heartbeat_time": iso(worker.last_heartbeat_time),
        "heartbeat_interval_seconds": worker.heartbeat_interval_seconds,
        "status": status,
    }


def worker_flow_run_to_wire(run, *, work_pool_id, now: dt.datetime) -> dict[str, Any]:
    """One entry of ``get_scheduled_flow_runs``: the run with the pool and queue it came from."""
    return {
        "work_pool_id": str(work_pool_id),
        "work_queue_id": str(run.work_queue_id),
        "flow_run": flow_run_to_wire(run, state=run.state, now=now),
    }


def poll_answer_to_wire(runs, *, pool, now: dt.datetime) -> list[dict[str, Any]]:
    """The body of ``get_scheduled_flow_runs``."""
    return [worker_flow_run_to_wire(run, work_pool_id=pool.id, now=now) for run in runs]
