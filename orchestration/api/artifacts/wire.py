"""Artifacts in Prefect's response shape (``Artifact``)."""

from __future__ import annotations

from typing import Any

from orchestration.schemas.base import iso


def artifact_to_wire(artifact) -> dict[str, Any]:
    return {
        "id": str(artifact.id),
        "created": iso(artifact.created),
        "updated": iso(artifact.updated),
        "key": artifact.key,
        "type": artifact.type,
        "description": artifact.description,
        "data": artifact.data,
        "metadata_": artifact.metadata,
        "flow_run_id": str(artifact.flow_run_id) if artifact.flow_run_id else None,
        "task_run_id": str(artifact.task_run_id) if artifact.task_run_id else None,
    }
