"""Shapes of the events API: an incoming event, Prefect's ``EventFilter`` and the request bodies.

The filter mirrors ``prefect.server.events.filters`` field by field (unknown keys are ignored, so a
newer client's extra criteria do not break an older server); ``orchestration.events.filters`` turns
it into querysets and matches live events against it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestration.schemas.base import iso

# Column sizes of ``orchestration.models.Event`` (and ``EventResource``).
MAX_EVENT_NAME = 255
MAX_RESOURCE_ID = 255
# Prefect's defaults (``PREFECT_EVENTS_MAXIMUM_RELATED_RESOURCES`` / ``…_LABELS_PER_RESOURCE``).
MAX_RELATED_RESOURCES = 500
MAX_LABELS_PER_RESOURCE = 500


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00: a refusal of the value, not a server error
        raise ValueError("the time is out of range once in UTC") from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- Incoming events -----------------------------------------------------------------------------


class EventIn(_Model):
    """``prefect.events.Event`` as a client sends it. ``received`` is ours to stamp."""

    id: uuid.UUID
    occurred: dt.datetime
    event: str = Field(min_length=1, max_length=MAX_EVENT_NAME)
    resource: dict[str, str]
    related: list[dict[str, str]] = Field(default_factory=list, max_length=MAX_RELATED_RESOURCES)
    payload: dict[str, Any] = Field(default_factory=dict)
    follows: uuid.UUID | None = None

    @field_validator("occurred")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return _aware(value)

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: dict[str, str]) -> dict[str, str]:
        resource_id = value.get("prefect.resource.id")
        if not resource_id:
            raise ValueError("Resources must include a non-empty prefect.resource.id label")
        if len(resource_id) > MAX_RESOURCE_ID:
            raise ValueError(f"prefect.resource.id is longer than {MAX_RESOURCE_ID} characters")
        if len(value) > MAX_LABELS_PER_RESOURCE:
            raise ValueError(f"The maximum number of labels per resource is {MAX_LABELS_PER_RESOURCE}")
        return value

    @field_validator("related")
    @classmethod
    def _related(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        for related in value:
            if not related.get("prefect.resource.id") or not related.get("prefect.resource.role"):
                raise ValueError(
                    "Related resources must include prefect.resource.id and prefect.resource.role"
                )
            if (
                max(len(related["prefect.resource.id"]), len(related["prefect.resource.role"]))
                > MAX_RESOURCE_ID
            ):
                # Kept in ``EventResource`` (the feed of one resource), as the primary resource's
                # id is kept in ``Event.resource_id``.
                raise ValueError(
                    f"A related prefect.resource.id or role is longer than {MAX_RESOURCE_ID} characters"
                )
            if len(related) > MAX_LABELS_PER_RESOURCE:
                raise ValueError(f"The maximum number of labels per resource is {MAX_LABELS_PER_RESOURCE}")
        return value

    @property
    def resource_id(self) -> str:
        return self.resource["prefect.resource.id"]


# --- EventFilter -------------------------------------------------------------------------------


def _default_since() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=180)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EventOccurredFilter(_Model):
    since: dt.datetime = Field(default_factory=_default_since)
    until: dt.datetime = Field(default_factory=_now)

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return _aware(value)

    def clamp(self, max_duration: dt.timedelta) -> None:
        """Limit how far back the filter looks (the websocket backfill does this)."""
        self.since = max(self.since, _now() - max_duration)


#: Terms one filter criterion may list: each becomes a clause of one SQL expression, and SQLite
#: refuses expressions deeper than 1,000 (a subscriber's filter must not kill its own socket).
MAX_TERMS = 500
Terms = Annotated[list[str], Field(max_length=MAX_TERMS)]


class EventNameFilter(_Model):
    prefix: Terms | None = None
    exclude_prefix: Terms | None = None
    name: Terms | None = None
    exclude_name: Terms | None = None


LabelValues = str | Terms


def _normalise_labels(labels: dict[str, LabelValues] | None) -> dict[str, list[str]] | None:
    """A ``ResourceSpecification``: label → glob pattern(s), a leading ``!`` negating a pattern;
    a single pattern becomes a list of one."""
    if labels is None:
        return None
    return {label: [values] if isinstance(values, str) else list(values) for label, values in labels.items()}


class EventResourceFilter(_Model):
    id: Terms | None = None
    id_prefix: Terms | None = None
    labels: dict[str, LabelValues] | None = None
    distinct: bool = False

    @field_validator("labels")
    @classmethod
    def _labels(cls, value):
        return _normalise_labels(value)


class EventRelatedFilter(_Model):
    id: Terms | None = None
    role: Terms | None = None
    resources_in_roles: Annotated[list[tuple[str, str]], Field(max_length=MAX_TERMS)] | None = None
    labels: dict[str, LabelValues] | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, value):
        return _normalise_labels(value)


class EventAnyResourceFilter(_Model):
    id: Terms | None = None
    id_prefix: Terms | None = None
    labels: dict[str, LabelValues] | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, value):
        return _normalise_labels(value)


class EventIDFilter(_Model):
    id: list[uuid.UUID] | None = None


class EventTextFilter(_Model):
    query: str = Field(max_length=200)


class EventFilter(_Model):
    occurred: EventOccurredFilter = Field(default_factory=EventOccurredFilter)
    event: EventNameFilter | None = None
    resource: EventResourceFilter | None = None
    related: EventRelatedFilter | list[EventRelatedFilter] | None = None
    any_resource: EventAnyResourceFilter | list[EventAnyResourceFilter] | None = None
    id: EventIDFilter = Field(default_factory=EventIDFilter)
    text: EventTextFilter | None = None
    order: Literal["ASC", "DESC"] = "DESC"

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data):
        # Clients send ``"occurred": null`` / ``"id": null`` for "no criteria".
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if not (k in ("occurred", "id", "order") and v is None)}
        return data

    @property
    def related_filters(self) -> list[EventRelatedFilter]:
        if self.related is None:
            return []
        return self.related if isinstance(self.related, list) else [self.related]

    @property
    def any_resource_filters(self) -> list[EventAnyResourceFilter]:
        if self.any_resource is None:
            return []
        return self.any_resource if isinstance(self.any_resource, list) else [self.any_resource]


# --- Request bodies --------------------------------------------------------------------------------

INTERACTIVE_PAGE_SIZE = 50
# Prefect's server caps ``limit`` at 50 while its client asks for 100 by default: accept up to this.
MAX_PAGE_SIZE = 200


class ReadEventsBody(_Model):
    filter: EventFilter | None = None
    limit: int = Field(default=INTERACTIVE_PAGE_SIZE, ge=0)

    @field_validator("limit")
    @classmethod
    def _cap(cls, value: int) -> int:
        return min(value, MAX_PAGE_SIZE)


class CountEventsBody(_Model):
    filter: EventFilter = Field(default_factory=EventFilter)
    time_unit: Literal["week", "day", "hour", "minute", "second"] = "day"
    time_interval: float = Field(default=1.0, ge=0.01)

    @model_validator(mode="before")
    @classmethod
    def _null_filter(cls, data):
        if isinstance(data, dict) and data.get("filter") is None:
            data = {k: v for k, v in data.items() if k != "filter"}
        return data


Countable = Literal["day", "time", "event", "resource"]
COUNTABLES: tuple[str, ...] = ("day", "time", "event", "resource")


def event_to_wire(event) -> dict[str, Any]:
    """A stored event in Prefect's ``ReceivedEvent`` shape: served by ``/events/filter`` and
    published to ``/events/out`` subscribers."""
    return {
        "id": str(event.id),
        "occurred": iso(event.occurred),
        "event": event.event,
        "resource": event.resource,
        "related": event.related,
        "payload": event.payload,
        "received": iso(event.received),
        "follows": str(event.follows) if event.follows else None,
    }
