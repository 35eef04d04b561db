"""Reads of flow runs beyond the filter grammar: their states, their inputs, their history and
lateness, their graphs (Prefect's ``models/flow_runs.py``, ``api/run_history.py`` and the graph
queries of ``database/query_components.py``) and their logs for download."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterator
from itertools import chain
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from core.errors import AppError, NotFound, ObjectNotFound
from orchestration.models import Artifact, FlowRun, FlowRunInput, FlowRunState, Log, TaskRun, TaskRunState
from orchestration.models.states import TERMINAL_STATE_TYPES, StateType

#: Prefect's ``PREFECT_API_MAX_FLOW_RUN_GRAPH_NODES`` / ``…_ARTIFACTS`` defaults.
MAX_GRAPH_NODES = 10_000
MAX_GRAPH_ARTIFACTS = 10_000
#: Prefect's ``FLOW_RUN_LOGS_DOWNLOAD_PAGE_LIMIT``.
LOGS_DOWNLOAD_PAGE = 1000
#: Prefect caps a history at 500 intervals.
MAX_HISTORY_INTERVALS = 500
_TERMINAL = {str(t) for t in TERMINAL_STATE_TYPES}


class GraphTooLarge(AppError):
    """Prefect's ``FlowRunGraphTooLarge``: answered 400."""

    status_code = 400
    default_code = "graph_too_large"


def flow_run_get(*, flow_run_id: uuid.UUID) -> FlowRun:
    run = FlowRun.objects.select_related("state").filter(id=flow_run_id).first()
    if run is None:
        raise NotFound("Flow run not found")
    return run


# --- states ---------------------------------------------------------------------------------------


def flow_run_state_get(*, state_id: uuid.UUID) -> FlowRunState:
    state = FlowRunState.objects.filter(id=state_id).first()
    if state is None:
        raise NotFound("Flow run state not found")
    return state


def flow_run_state_list(*, flow_run_id: uuid.UUID) -> QuerySet:
    """The run's states, oldest first (an unknown run has none, as in Prefect)."""
    return FlowRunState.objects.filter(flow_run_id=flow_run_id).order_by("timestamp", "created")


# --- inputs ---------------------------------------------------------------------------------------


def flow_run_input_get(*, flow_run_id: uuid.UUID, key: str) -> FlowRunInput | None:
    return FlowRunInput.objects.filter(flow_run_id=flow_run_id, key=key).first()


def flow_run_input_list(
    *, flow_run_id: uuid.UUID, prefix: str, limit: int, exclude_keys: list[str]
) -> list[FlowRunInput]:
    """Inputs whose key starts with ``prefix`` (oldest first), as Prefect's ``filter_flow_run_input``."""
    if limit <= 0:
        return []
    qs = FlowRunInput.objects.filter(flow_run_id=flow_run_id, key__startswith=prefix)
    if exclude_keys:
        qs = qs.exclude(key__in=exclude_keys)
    return list(qs.order_by("created", "id")[:limit])


# --- history and lateness -------------------------------------------------------------------------


def _estimated(run: dict[str, Any], now: dt.datetime) -> tuple[float, float]:
    """``estimated_run_time`` and ``estimated_start_time_delta`` (Prefect's hybrid properties)."""
    run_time = run["total_run_time"] or 0.0
    if run["state_type"] == StateType.RUNNING and run["state_timestamp"] is not None:
        run_time += max(0.0, (now - run["state_timestamp"]).total_seconds())
    expected, start = run["expected_start_time"], run["start_time"]
    lateness = 0.0
    if expected is not None:
        if start is not None:
            lateness = max(0.0, (start - expected).total_seconds())
        elif run["state_type"] not in _TERMINAL and expected < now:
            lateness = (now - expected).total_seconds()
    return run_time, lateness


_HISTORY_FIELDS = (
    "expected_start_time",
    "start_time",
    "state_type",
    "state_name",
    "state_timestamp",
    "total_run_time",
)


def flow_run_lateness(*, runs: QuerySet) -> float | None:
    """The average lateness in seconds of ``runs``; ``None`` when there are none."""
    now = timezone.now()
    total, count = 0.0, 0
    for run in runs.values(*_HISTORY_FIELDS).iterator():
        total += _estimated(run, now)[1]
        count += 1
    return total / count if count else None


def flow_run_history(
    *, runs: QuerySet, start: dt.datetime, end: dt.datetime, interval: dt.timedelta
) -> list[dict[str, Any]]:
    """Runs by interval of their expected start time and by state, as Prefect's ``run_history``."""
    elapsed = end - start
    if elapsed <= dt.timedelta(0):
        return []
    count = min(-((-elapsed) // interval), MAX_HISTORY_INTERVALS)
    query_end = start + count * interval
    now = timezone.now()
    buckets: dict[int, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
    window = runs.filter(expected_start_time__gte=start, expected_start_time__lt=query_end)
    for run in window.values(*_HISTORY_FIELDS).iterator():
        index = int((run["expected_start_time"] - start) // interval)
        run_time, lateness = _estimated(run, now)
        key = (run["state_type"], run["state_name"])
        entry = buckets[index].setdefault(
            key,
            {
                "state_type": run["state_type"],
                "state_name": run["state_name"],
                "count_runs": 0,
                "sum_estimated_run_time": 0.0,
                "sum_estimated_lateness": 0.0,
            },
        )
        entry["count_runs"] += 1
        entry["sum_estimated_run_time"] += max(0.0, run_time)
        entry["sum_estimated_lateness"] += max(0.0, lateness)
    return [
        {
            "interval_start": start + i * interval,
            "interval_end": start + (i + 1) * interval,
            "states": list(buckets[i].values()),
        }
        for i in range(count)
    ]


# --- graphs ---------------------------------------------------------------------------------------


def _input_ids(task_inputs: dict | None) -> Iterator[tuple[str, dict]]:
    for key, values in (task_inputs or {}).items():
        for value in values if isinstance(values, list) else []:
            if isinstance(value, dict):
                yield key, value


def flow_run_dependencies(*, flow_run_id: uuid.UUID) -> list[dict[str, Any]]:
    """Prefect's ``read_task_run_dependencies`` (graph v1): each task run of the flow run with the
    task runs and parameters it was given, its state and times."""
    if not FlowRun.objects.filter(id=flow_run_id).exists():
        raise ObjectNotFound(f"Flow run with id {flow_run_id} not found")
    task_runs = list(TaskRun.objects.filter(flow_run_id=flow_run_id).order_by("-expected_start_time", "id"))
    states = {
        s.id: s for s in TaskRunState.objects.filter(id__in=[t.state_id for t in task_runs if t.state_id])
    }
    now = timezone.now()
    result = []
    for task_run in task_runs:
        inputs = []
        for value in chain(*(v for v in (task_run.task_inputs or {}).values() if isinstance(v, list))):
            if isinstance(value, dict) and value not in inputs:
                inputs.append(value)
        state = states.get(task_run.state_id)
        run_time = task_run.total_run_time or 0.0
        if task_run.state_type == StateType.RUNNING and task_run.state_timestamp is not None:
            run_time += max(0.0, (now - task_run.state_timestamp).total_seconds())
        result.append(
            {
                "task_run": task_run,
                "upstream_dependencies": inputs,
                "state": state,
                "estimated_run_time": run_time,
                "untrackable_result": bool((state.state_details or {}).get("untrackable_result"))
                if state
                else False,
            }
        )
    return result


def _latest_artifact_ids(keys: set[str]) -> set[uuid.UUID]:
    latest: dict[str, tuple[dt.datetime, uuid.UUID]] = {}
    for key, created, artifact_id in Artifact.objects.filter(key__in=keys).values_list(
        "key", "created", "id"
    ):
        if key not in latest or (created, artifact_id) > latest[key]:
            latest[key] = (created, artifact_id)
    return {artifact_id for _, artifact_id in latest.values()}


def _graph_artifacts(flow_run_id: uuid.UUID) -> dict[uuid.UUID | None, list[dict[str, Any]]]:
    artifacts = list(
        Artifact.objects.filter(flow_run_id=flow_run_id, type__isnull=False)
        .exclude(type="result")
        .order_by("created", "id")[:MAX_GRAPH_ARTIFACTS]
    )
    latest = _latest_artifact_ids({a.key for a in artifacts if a.key is not None})
    grouped: dict[uuid.UUID | None, list[dict[str, Any]]] = defaultdict(list)
    for artifact in artifacts:
        grouped[artifact.task_run_id].append(
            {
                "id": artifact.id,
                "created": artifact.created,
                "key": artifact.key,
                "type": artifact.type,
                "is_latest": artifact.key is None or artifact.id in latest,
                "data": artifact.data if artifact.type == "progress" else None,
            }
        )
    return grouped


def flow_run_graph(*, flow_run_id: uuid.UUID, since: dt.datetime) -> dict[str, Any]:
    """Prefect's ``flow_run_graph_v2``: the run's task runs and subflow runs as nodes, with the
    edges their inputs make (``__parents__`` inputs encapsulate rather than precede), artifacts
    and the run's states. Datetimes and ids are returned as Python values."""
    run = (
        FlowRun.objects.filter(id=flow_run_id).values("start_time", "expected_start_time", "end_time").first()
    )
    if run is None:
        raise ObjectNotFound(f"Flow run {flow_run_id} not found")
    task_runs = list(
        TaskRun.objects.filter(flow_run_id=flow_run_id).filter(
            Q(start_time__isnull=False) | Q(expected_start_time__isnull=False) | Q(id__in=_subflow_parents())
        )
    )
    subflows = {
        sub.parent_task_run_id: sub
        for sub in FlowRun.objects.filter(parent_task_run_id__in=[t.id for t in task_runs]).select_related(
            "flow"
        )
    }
    nodes: dict[uuid.UUID, dict[str, Any]] = {}
    refs: dict[uuid.UUID, list[tuple[str, uuid.UUID]]] = {}
    for task in task_runs:
        sub = subflows.get(task.id)
        start = (sub.start_time or sub.expected_start_time) if sub else None
        start = start or task.start_time or task.expected_start_time
        if start is None:
            continue
        if sub is not None:
            node_id, kind, label, state_type = (
                sub.id,
                "flow-run",
                f"{sub.flow.name} / {sub.name}",
                sub.state_type,
            )
            end = sub.end_time or task.end_time
        else:
            node_id, kind, label, state_type = task.id, "task-run", task.name, task.state_type
            end = None
        if end is None:
            end = task.end_time or (
                task.expected_start_time if task.state_type == StateType.COMPLETED else None
            )
        if sub is not None and state_type is None:
            state_type = task.state_type
        if node_id in nodes:
            continue
        nodes[node_id] = {"kind": kind, "id": node_id, "label": label, "state_type": state_type,
                          "start_time": start, "end_time": end}  # fmt: skip
        links = []
        for key, value in _input_ids(task.task_inputs):
            parent = _as_uuid(value.get("id"))
            if parent is not None:
                links.append(("encapsulating" if key == "__parents__" else "parent", parent))
        refs[node_id] = links

    parents: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    children: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    encapsulating: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for node_id, links in refs.items():
        for how, parent in links:
            if parent not in nodes:
                continue
            if how == "encapsulating":
                encapsulating[node_id].append(parent)
            else:
                parents[node_id].append(parent)
                children[parent].append(node_id)

    def by_start(ids: list[uuid.UUID]) -> list[uuid.UUID]:
        return sorted(ids, key=lambda i: nodes[i]["start_time"])

    chosen = [n for n in nodes.values() if n["end_time"] is None or n["end_time"] >= since]
    chosen.sort(key=lambda n: (n["start_time"], n["end_time"] is None, n["end_time"] or n["start_time"]))
    if len(chosen) > MAX_GRAPH_NODES:
        raise GraphTooLarge(f"The graph of flow run {flow_run_id} has more than {MAX_GRAPH_NODES} nodes.")
    artifacts = _graph_artifacts(flow_run_id)
    out_nodes = []
    root_ids = []
    for node in chosen:
        node_id = node["id"]
        if not parents.get(node_id):
            root_ids.append(node_id)
        out_nodes.append(
            {
                **node,
                "parents": by_start(parents.get(node_id, [])),
                "children": by_start(children.get(node_id, [])),
                "encapsulating": list(dict.fromkeys(by_start(encapsulating.get(node_id, [])))),
                "artifacts": artifacts.get(node_id, []),
            }
        )
    return {
        "start_time": run["start_time"] or run["expected_start_time"],
        "end_time": run["end_time"],
        "root_node_ids": root_ids,
        "nodes": out_nodes,
        "artifacts": artifacts.get(None, []),
        "states": list(flow_run_state_list(flow_run_id=flow_run_id)),
    }


def _subflow_parents() -> QuerySet:
    return FlowRun.objects.filter(parent_task_run_id__isnull=False).values("parent_task_run_id")


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


# --- logs -----------------------------------------------------------------------------------------


#: A log row as the download writes it: timestamp, level, flow run id, task run id, message.
LogRow = tuple[dt.datetime, str, uuid.UUID | None, uuid.UUID | None, str]


def flow_run_log_pages(
    *, workspace_id: uuid.UUID, flow_run_id: uuid.UUID, page_size: int | None = None
) -> Iterator[list[LogRow]]:
    """The run's logs oldest first (by timestamp, then id), ``page_size`` rows per read
    (``LOGS_DOWNLOAD_PAGE``, Prefect's page of its ``download_logs``). Consumed by a streamed answer
    after the request's scope is left, so it names its workspace; each read continues after the
    last row of the one before (no OFFSET: every page costs the same)."""
    size = page_size or LOGS_DOWNLOAD_PAGE
    logs = Log.objects.for_workspace(workspace_id).filter(flow_run_id=flow_run_id).order_by("timestamp", "id")
    after: tuple[dt.datetime, uuid.UUID] | None = None
    while True:
        page = logs
        if after is not None:
            page = logs.filter(Q(timestamp__gt=after[0]) | Q(timestamp=after[0], id__gt=after[1]))
        rows = list(
            page.values_list("timestamp", "id", "level", "flow_run_id", "task_run_id", "message")[:size]
        )
        if not rows:
            return
        yield [(timestamp, level, run, task, message) for timestamp, _, level, run, task, message in rows]
        if len(rows) < size:
            return
        after = rows[-1][0], rows[-1][1]


__all__ = [
    "GraphTooLarge",
    "flow_run_dependencies",
    "flow_run_get",
    "flow_run_graph",
    "flow_run_history",
    "flow_run_input_get",
    "flow_run_input_list",
    "flow_run_lateness",
    "flow_run_log_pages",
    "flow_run_state_get",
    "flow_run_state_list",
]
