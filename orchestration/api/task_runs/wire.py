"""Task runs in Prefect's response shape (``TaskRun``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from orchestration.api.flow_runs.wire import run_times
from orchestration.schemas.base import iso
from orchestration.schemas.states import state_to_wire

TASK_RUN_POLICY_DEFAULTS = {
    "max_retries": 0,
    "retry_delay_seconds": 0.0,
    "retries": 0,
    "retry_delay": 0,
    "retry_jitter_factor": None,
}


def task_run_to_wire(run, state=None, now: dt.datetime | None = None) -> dict[str, Any]:
    """``state`` is the current state row, if loaded; otherwise the state is rebuilt from the
    denormalised columns and the newest state row."""
    now = now or timezone.now()
    estimated_run_time, estimated_delta = run_times(run, now)
    if state is None and run.state_id is not None:
        state = run.states.filter(id=run.state_id).first()
    return {
        "id": str(run.id),
        "created": iso(run.created),
        "updated": iso(run.updated),
        "name": run.name,
        "flow_run_id": str(run.flow_run_id) if run.flow_run_id else None,
        "task_key": run.task_key,
        "dynamic_key": run.dynamic_key,
        "cache_key": run.cache_key,
        "cache_expiration": iso(run.cache_expiration),
        "task_version": run.task_version,
        "empirical_policy": {**TASK_RUN_POLICY_DEFAULTS, **(run.empirical_policy or {})},
        "tags": run.tags or [],
        "labels": run.labels or {},
        "state_id": str(run.state_id) if run.state_id else None,
        "task_inputs": run.task_inputs or {},
        "state_type": run.state_type,
        "state_name": run.state_name,
        "run_count": run.run_count,
        "flow_run_run_count": run.flow_run_run_count,
        "expected_start_time": iso(run.expected_start_time),
        "next_scheduled_start_time": iso(run.next_scheduled_start_time),
        "start_time": iso(run.start_time),
        "end_time": iso(run.end_time),
        "total_run_time": run.total_run_time or 0.0,
        "estimated_run_time": estimated_run_time,
        "estimated_start_time_delta": estimated_delta,
        "state": state_to_wire(state),
    }


def history_to_wire(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prefect's ``HistoryResponse`` list."""
    return [
        {
            "interval_start": iso(item["interval_start"]),
            "interval_end": iso(item["interval_end"]),
            "states": item["states"],
        }
        for item in history
    ]


def task_worker_to_wire(worker) -> dict[str, Any]:
    """Prefect's ``TaskWorkerResponse``."""
    return {
        "identifier": worker.identifier,
        "task_keys": list(worker.task_keys or []),
        "timestamp": iso(worker.last_seen),
    }
