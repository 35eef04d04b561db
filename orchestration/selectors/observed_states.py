"""Prefect's ``GET observed-states`` (``models/observed_states.py``): the exact (type, name) pairs
of the states the workspace's flow and task runs have been in, with the first and last time each
was seen."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Max, Min, Q

from orchestration.models import FlowRunState, TaskRunState

ORDERINGS = ("NAME_ASC", "LAST_SEEN_DESC")


def observed_states(*, query: str | None, order_by: str, limit: int) -> list[dict[str, Any]]:
    """``[{"state_type", "state_name", "first_seen", "last_seen"}]``: ``query`` is a
    case-insensitive prefix of the type or the name; ``order_by`` is ``LAST_SEEN_DESC`` (latest
    first, then by type and name) or ``NAME_ASC`` (by type, then name)."""
    prefix = (query or "").strip()
    where = Q(type__istartswith=prefix) | Q(name__istartswith=prefix) if prefix else Q()
    seen: dict[tuple[str, str], list[dt.datetime]] = {}
    for model in (FlowRunState, TaskRunState):
        rows = (
            model.objects.filter(where)
            .order_by()
            .values("type", "name")
            .annotate(first=Min("timestamp"), last=Max("timestamp"))
        )
        for row in rows:
            key = (str(row["type"]), row["name"])
            if key in seen:
                seen[key] = [min(seen[key][0], row["first"]), max(seen[key][1], row["last"])]
            else:
                seen[key] = [row["first"], row["last"]]
    items = sorted(seen.items(), key=lambda item: item[0])
    if order_by == "LAST_SEEN_DESC":
        items.sort(key=lambda item: item[1][1], reverse=True)
    return [
        {"state_type": state_type, "state_name": name, "first_seen": first, "last_seen": last}
        for (state_type, name), (first, last) in items[:limit]
    ]
