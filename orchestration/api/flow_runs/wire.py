"""Flow runs in Prefect's response shape (``FlowRunResponse``). The client validates every response
with its pydantic models, so every field it knows is present (and ``id`` always is)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from orchestration.schemas.base import iso
from orchestration.schemas.responses import OrchestrationResult, SetStateStatus
from orchestration.schemas.states import state_to_wire

FLOW_RUN_POLICY_DEFAULTS = {
    "max_retries": 0,
    "retry_delay_seconds": 0.0,
    "retries": None,
    "retry_delay": None,
    "pause_keys": [],
    "resuming": False,
    "retry_type": None,
}


def run_times(run, now: dt.datetime) -> tuple[float, float]:
    """``estimated_run_time`` and ``estimated_start_time_delta`` as Prefect derives them."""
    run_time = run.total_run_time or 0.0
    if run.state_type == "RUNNING" and run.state_timestamp is not None:
        run_time += max(0.0, (now - run.state_timestamp).total_seconds())
    delta = 0.0
    if run.expected_start_time is not None:
        if run.start_time is not None:
            delta = max(0.0, (run.start_time - run.expected_start_time).total_seconds())
        elif run.state_type not in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
            delta = max(0.0, (now - run.expected_start_time).total_seconds())
    return run_time, delta


def flow_run_to_wire(run, state=None, now: dt.datetime | None = None) -> dict[str, Any]:
    """``state`` is the current state row (pass it when already loaded to save a query)."""
    now = now or timezone.now()
    state = state if state is not None else run.state
    estimated_run_time, estimated_delta = run_times(run, now)
    return {
        "id": str(run.id),
        "created": iso(run.created),
        "updated": iso(run.updated),
        "name": run.name,
        "flow_id": str(run.flow_id),
        "state_id": str(run.state_id) if run.state_id else None,
        "deployment_id": str(run.deployment_id) if run.deployment_id else None,
        "deployment_version": run.deployment_version,
        "work_queue_id": str(run.work_queue_id) if run.work_queue_id else None,
        "work_queue_name": run.work_queue_name,
        "flow_version": run.flow_version,
        "parameters": run.parameters or {},
        "idempotency_key": run.idempotency_key,
        "context": run.context or {},
        "empirical_policy": {**FLOW_RUN_POLICY_DEFAULTS, **(run.empirical_policy or {})},
        "tags": run.tags or [],
        "labels": run.labels or {},
        "parent_task_run_id": str(run.parent_task_run_id) if run.parent_task_run_id else None,
        "state_type": run.state_type,
        "state_name": run.state_name,
        "run_count": run.run_count,
        "expected_start_time": iso(run.expected_start_time),
        "next_scheduled_start_time": iso(run.next_scheduled_start_time),
        "start_time": iso(run.start_time),
        "end_time": iso(run.end_time),
        "total_run_time": run.total_run_time or 0.0,
        "estimated_run_time": estimated_run_time,
        "estimated_start_time_delta": estimated_delta,
        "auto_scheduled": run.auto_scheduled,
        "infrastructure_document_id": (
            str(run.infrastructure_document_id) if run.infrastructure_document_id else None
        ),
        "infrastructure_pid": run.infrastructure_pid,
        "created_by": run.created_by,
        "work_pool_id": str(run.work_pool_id) if run.work_pool_id else None,
        "work_pool_name": run.work_pool_name,
        "job_variables": run.job_variables or {},
        "state": state_to_wire(state),
    }


def orchestration_result_to_wire(result: OrchestrationResult) -> dict[str, Any]:
    """Prefect's ``OrchestrationResult`` JSON (its state in the ``State`` shape)."""
    return {
        "state": state_to_wire(result.state),
        "status": SetStateStatus(result.status).value,
        "details": dict(result.details),
    }


def flow_run_input_to_wire(item) -> dict[str, Any]:
    """Prefect's ``FlowRunInput``."""
    return {
        "id": str(item.id),
        "created": iso(item.created),
        "updated": iso(item.updated),
        "flow_run_id": str(item.flow_run_id),
        "key": item.key,
        "value": item.value,
        "sender": item.sender,
    }


def bulk_state_result_to_wire(item) -> dict[str, Any]:
    """Prefect's ``FlowRunOrchestrationResult``."""
    return {"flow_run_id": str(item.flow_run_id), **orchestration_result_to_wire(item.result)}


def history_to_wire(intervals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prefect's ``HistoryResponse`` list (time deltas as seconds)."""
    return [
        {
            "interval_start": iso(interval["interval_start"]),
            "interval_end": iso(interval["interval_end"]),
            "states": interval["states"],
        }
        for interval in intervals
    ]


def dependency_to_wire(item: dict[str, Any]) -> dict[str, Any]:
    """Prefect's ``DependencyResult`` (graph v1)."""
    task_run = item["task_run"]
    return {
        "id": str(task_run.id),
        "name": task_run.name,
        "upstream_dependencies": item["upstream_dependencies"],
        "state": state_to_wire(item["state"]),
        "expected_start_time": iso(task_run.expected_start_time),
        "start_time": iso(task_run.start_time),
        "end_time": iso(task_run.end_time),
        "total_run_time": task_run.total_run_time or 0.0,
        "estimated_run_time": item["estimated_run_time"],
        "untrackable_result": item["untrackable_result"],
    }


def _graph_artifact(artifact: dict[str, Any]) -> dict[str, Any]:
    return {**artifact, "id": str(artifact["id"]), "created": iso(artifact["created"])}


def graph_to_wire(graph: dict[str, Any]) -> dict[str, Any]:
    """Prefect's ``Graph`` (graph v2): nodes are ``[id, node]`` pairs."""
    nodes = []
    for node in graph["nodes"]:
        node_id = str(node["id"])
        nodes.append(
            [
                node_id,
                {
                    "kind": node["kind"],
                    "id": node_id,
                    "label": node["label"],
                    "state_type": node["state_type"],
                    "start_time": iso(node["start_time"]),
                    "end_time": iso(node["end_time"]),
                    "parents": [{"id": str(i)} for i in node["parents"]],
                    "children": [{"id": str(i)} for i in node["children"]],
                    "encapsulating": [{"id": str(i)} for i in node["encapsulating"]],
                    "artifacts": [_graph_artifact(a) for a in node["artifacts"]],
                },
            ]
        )
    return {
        "start_time": iso(graph["start_time"]),
        "end_time": iso(graph["end_time"]),
        "root_node_ids": [str(i) for i in graph["root_node_ids"]],
        "nodes": nodes,
        "artifacts": [_graph_artifact(a) for a in graph["artifacts"]],
        "states": [
            {"id": str(s.id), "timestamp": iso(s.timestamp), "type": s.type, "name": s.name}
            for s in graph["states"]
        ],
    }
