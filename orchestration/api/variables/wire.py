"""Variables in Prefect's response shape (``Variable``)."""

from __future__ import annotations

from typing import Any

from orchestration.schemas.base import iso


def variable_to_wire(variable) -> dict[str, Any]:
    return {
        "id": str(variable.id),
        "created": iso(variable.created),
        "updated": iso(variable.updated),
        "name": variable.name,
        "value": variable.value,
        "tags": variable.tags or [],
    }
