"""Reads of task runs beyond the filter grammar: their states, the run history (Prefect's
``api/run_history.py`` for ``task_run``), and the connected task workers."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

from django.utils import timezone

from orchestration.models import TaskRunState, TaskWorker
from orchestration.selectors.filters import FilterError, filter_queryset

#: Prefect answers at most this many intervals.
MAX_HISTORY_INTERVALS = 500
#: A task worker not seen for this long (its socket observes it every few seconds) is gone.
TASK_WORKER_STALE_AFTER = dt.timedelta(seconds=60)

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def task_run_states_list(*, task_run_id: uuid.UUID) -> list[TaskRunState]:
    return list(TaskRunState.objects.filter(task_run_id=task_run_id).order_by("timestamp", "id"))


def task_run_state_get(*, state_id: uuid.UUID) -> TaskRunState | None:
    return TaskRunState.objects.filter(id=state_id).first()


def task_run_history(
    *,
    body: dict,
    history_start: dt.datetime,
    history_end: dt.datetime,
    interval: dt.timedelta,
    related: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Counts of task runs by state per interval of their expected start time."""
    if interval < dt.timedelta(seconds=1):
        raise FilterError("History interval must not be less than 1 second.")
    elapsed = history_end - history_start
    if elapsed <= dt.timedelta(0):
        return []
    count = min(-((-elapsed) // interval), MAX_HISTORY_INTERVALS)
    query_end = history_start + count * interval
    now = timezone.now()
    rows = (
        filter_queryset("task_runs", body, related=related)
        .filter(expected_start_time__gte=history_start, expected_start_time__lt=query_end)
        .values_list(
            "expected_start_time",
            "state_type",
            "state_name",
            "total_run_time",
            "state_timestamp",
            "start_time",
        )
    )
    buckets: dict[int, dict[tuple[str | None, str | None], list[float]]] = defaultdict(dict)
    for expected, state_type, state_name, run_time, state_timestamp, start_time in rows.iterator():
        index = int((expected - history_start) // interval)
        run_time = run_time or 0.0
        if state_type == "RUNNING" and state_timestamp is not None:
            run_time += max(0.0, (now - state_timestamp).total_seconds())
        if start_time is not None:
            lateness = max(0.0, (start_time - expected).total_seconds())
        elif state_type not in TERMINAL:
            lateness = max(0.0, (now - expected).total_seconds())
        else:
            lateness = 0.0
        totals = buckets[index].setdefault((state_type, state_name), [0, 0.0, 0.0])
        totals[0] += 1
        totals[1] += max(0.0, run_time)
        totals[2] += lateness
    return [
        {
            "interval_start": history_start + i * interval,
            "interval_end": history_start + (i + 1) * interval,
            "states": [
                {
                    "state_type": state_type,
                    "state_name": state_name,
                    "count_runs": totals[0],
                    "sum_estimated_run_time": totals[1],
                    "sum_estimated_lateness": totals[2],
                }
                for (state_type, state_name), totals in buckets[i].items()
            ],
        }
        for i in range(count)
    ]


def task_workers_list(*, task_keys: list[str] | None = None) -> list[TaskWorker]:
    """Connected task workers (seen recently), those serving any of ``task_keys`` if given."""
    workers = TaskWorker.objects.filter(last_seen__gte=timezone.now() - TASK_WORKER_STALE_AFTER).order_by(
        "identifier"
    )
    if not task_keys:
        return list(workers)
    wanted = set(task_keys)
    return [worker for worker in workers if wanted & set(worker.task_keys or [])]
