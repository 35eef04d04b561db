"""Logs in Prefect's response shape (``Log``)."""

from __future__ import annotations

from typing import Any

from orchestration.schemas.base import iso


def log_to_wire(log) -> dict[str, Any]:
    return {
        "id": str(log.id),
        "created": iso(log.created),
        "updated": iso(log.updated),
        "name": log.name,
        "level": log.level,
        "message": log.message,
        "timestamp": iso(log.timestamp),
        "flow_run_id": str(log.flow_run_id) if log.flow_run_id else None,
        "task_run_id": str(log.task_run_id) if log.task_run_id else None,
        "worker_id": str(log.worker_id) if log.worker_id else None,
    }
