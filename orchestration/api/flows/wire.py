"""Flows in Prefect's response shape (``Flow``)."""

from __future__ import annotations

from typing import Any

from orchestration.schemas.base import iso


def flow_to_wire(flow) -> dict[str, Any]:
    return {
        "id": str(flow.id),
        "created": iso(flow.created),
        "updated": iso(flow.updated),
        "name": flow.name,
        "tags": flow.tags or [],
        "labels": flow.labels or {},
    }
