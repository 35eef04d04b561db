"""Automations in Prefect's response shape (``Automation``)."""

from __future__ import annotations

from typing import Any

from orchestration.schemas.base import iso


def automation_to_wire(automation) -> dict[str, Any]:
    return {
        "id": str(automation.id),
        "created": iso(automation.created),
        "updated": iso(automation.updated),
        "name": automation.name,
        "description": automation.description,
        "enabled": automation.enabled,
        "tags": automation.tags or [],
        "trigger": automation.trigger,
        "actions": automation.actions,
        "actions_on_trigger": automation.actions_on_trigger or [],
        "actions_on_resolve": automation.actions_on_resolve or [],
    }
