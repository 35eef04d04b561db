"""Reads of automations (Prefect's ``read_automations_for_workspace`` and
``read_automations_related_to_resource``)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from core.errors import NotFound
from orchestration.models import Automation
from orchestration.schemas.automations import SORTS
from orchestration.selectors.filters import F, FilterError, Kind, kind_condition, paging

AUTOMATION = Kind(
    {
        "id": F("id", "uuid", "any_"),
        "name": F("name", "str", "any_"),
        "created": F("created", "datetime", "before_"),
        "tags": F("tags", "tags", "all_", "any_", "is_null_"),
    }
)


def automation_get(automation_id: uuid.UUID) -> Automation:
    automation = Automation.objects.filter(id=automation_id).first()
    if automation is None:
        raise NotFound("Automation not found")
    return automation


def automation_filter(body: Any) -> QuerySet:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise FilterError("the request body must be an object")
    return Automation.objects.filter(kind_condition(AUTOMATION, body.get("automations"), "automations"))


def automation_list(body: dict) -> QuerySet:
    sort = body.get("sort") or "NAME_ASC"
    if not isinstance(sort, str) or sort not in SORTS:
        raise FilterError(f"sort must be one of {', '.join(SORTS)}")
    limit, offset = paging(body)
    return automation_filter(body).order_by(*SORTS[sort])[offset : offset + limit]


def automations_related_to(resource_id: str, *, owned: bool | None = None) -> QuerySet:
    lookup: dict[str, Any] = {"related_resources__resource_id": resource_id}
    if owned is not None:
        lookup["related_resources__automation_owned_by_resource"] = owned
    return Automation.objects.filter(**lookup).order_by("name", "id")
