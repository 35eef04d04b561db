"""Concurrency limits in Prefect's response shapes (``GlobalConcurrencyLimitResponse``,
``MinimalConcurrencyLimitResponse``, v1 ``ConcurrencyLimit``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from orchestration.models import ConcurrencyLimitV2
from orchestration.schemas.base import iso
from orchestration.services.concurrency import TAG_PREFIX, limit_decayed


def limit_to_wire(limit: ConcurrencyLimitV2, now: dt.datetime | None = None) -> dict[str, Any]:
    """Prefect's ``ConcurrencyLimitV2`` / ``GlobalConcurrencyLimitResponse``, slots decayed to now."""
    decayed = limit_decayed(limit, now)
    return {
        "id": str(limit.id),
        "created": iso(limit.created),
        "updated": iso(limit.updated),
        "active": limit.active,
        "name": limit.name,
        "limit": limit.limit,
        "active_slots": decayed.active_slots,
        "denied_slots": decayed.denied_slots,
        "slot_decay_per_second": limit.slot_decay_per_second,
        "avg_slot_occupancy_seconds": limit.avg_slot_occupancy_seconds,
    }


def minimal_to_wire(limit: ConcurrencyLimitV2, name: str | None = None) -> dict[str, Any]:
    return {"id": str(limit.id), "name": name if name is not None else limit.name, "limit": limit.limit}


def tag_limit_to_wire(limit: ConcurrencyLimitV2, holders: list[str]) -> dict[str, Any]:
    """Prefect's v1 ``ConcurrencyLimit``: ``active_slots`` lists the task runs holding a slot."""
    return {
        "id": str(limit.id),
        "created": iso(limit.created),
        "updated": iso(limit.updated),
        "tag": limit.name.removeprefix(TAG_PREFIX),
        "concurrency_limit": limit.limit,
        "active_slots": holders,
    }
