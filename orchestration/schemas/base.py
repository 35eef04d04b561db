"""The base of every request body, and the datetime form of Prefect's JSON."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from pydantic import BaseModel, ConfigDict


class PrefectModel(BaseModel):
    """Unknown fields are ignored: newer clients send more than older servers know."""

    model_config = ConfigDict(extra="ignore")


def iso(value: dt.datetime | None) -> str | None:
    """An aware UTC ISO 8601 string ending in ``Z`` (a naive value is UTC)."""
    if value is None:
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
