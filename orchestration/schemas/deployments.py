"""Deployment and schedule bodies, validated as Prefect's server validates them
(``prefect/server/schemas/actions.py`` and ``schedules.py``). The deployment services take them.

Unknown top-level fields are ignored (newer clients send more than older servers know); a schedule
names exactly one of ``interval``, ``cron`` or ``rrule`` and may not carry unknown keys, as in
Prefect. Every schedule that passes is stored in the JSON form :func:`stored_schedule` gives.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from django.utils import timezone
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveInt,
    RootModel,
    Tag,
    field_validator,
    model_validator,
)

from orchestration.schemas.base import PrefectModel
from orchestration.schemas.core import FlowRunPolicy
from orchestration.schemas.parameters import parameter_schema_check, parameters_check
from orchestration.schemas.schedules import (
    normalize_rrule_string,
    timezone_names,
    validate_cron_string,
    validate_rrule_string,
    validate_timezone,
)
from orchestration.schemas.states import StateCreate

#: Prefect's ``PREFECT_SERVER_DEPLOYMENT_SCHEDULE_MAX_SCHEDULED_RUNS``.
SCHEDULE_MAX_SCHEDULED_RUNS_LIMIT = 50


# --- schedules ----------------------------------------------------------------------------------------


class _ScheduleBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntervalScheduleIn(_ScheduleBase):
    """Seconds (or an ISO 8601 duration) from ``anchor_date`` (now when not given; naive is UTC).
    Without a timezone, the anchor's named zone, else UTC."""

    interval: dt.timedelta
    anchor_date: dt.datetime | None = None
    timezone: str | None = None

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: dt.timedelta) -> dt.timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("interval must be positive")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> IntervalScheduleIn:
        if self.anchor_date is None:
            self.anchor_date = timezone.now()
        elif self.anchor_date.tzinfo is None:
            self.anchor_date = self.anchor_date.replace(tzinfo=dt.UTC)
        if self.timezone is not None:
            validate_timezone(self.timezone)
        else:
            key = getattr(self.anchor_date.tzinfo, "key", None)
            self.timezone = key if key in timezone_names() else "UTC"
        return self

    def stored(self) -> dict[str, Any]:
        anchor = self.anchor_date.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return {"interval": self.interval.total_seconds(), "anchor_date": anchor, "timezone": self.timezone}


class CronScheduleIn(_ScheduleBase):
    cron: str
    timezone: str | None = None
    day_or: bool = True

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron_string(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return validate_timezone(value)

    def stored(self) -> dict[str, Any]:
        return {"cron": self.cron, "timezone": self.timezone, "day_or": self.day_or}


class RRuleScheduleIn(_ScheduleBase):
    """An RFC 5545 rule (at most 6,500 characters). DTSTART is made explicit when missing, as
    Prefect does, so expanding a high-frequency rule does not walk every occurrence since 2020."""

    rrule: str
    timezone: str | None = "UTC"

    @field_validator("rrule")
    @classmethod
    def _rrule(cls, value: str) -> str:
        return validate_rrule_string(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return validate_timezone(value)

    @model_validator(mode="after")
    def _anchor(self) -> RRuleScheduleIn:
        self.rrule = normalize_rrule_string(self.rrule, timezone=self.timezone)
        return self

    def stored(self) -> dict[str, Any]:
        return {"rrule": self.rrule, "timezone": self.timezone or "UTC"}


def _schedule_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in ("interval", "cron", "rrule"):
            if kind in value:
                return kind
        return None
    if isinstance(value, IntervalScheduleIn):
        return "interval"
    if isinstance(value, CronScheduleIn):
        return "cron"
    if isinstance(value, RRuleScheduleIn):
        return "rrule"
    return None


ScheduleIn = Annotated[
    Annotated[IntervalScheduleIn, Tag("interval")]
    | Annotated[CronScheduleIn, Tag("cron")]
    | Annotated[RRuleScheduleIn, Tag("rrule")],
    Discriminator(
        _schedule_kind,
        custom_error_type="invalid_schedule",
        custom_error_message="A schedule is an object with one of interval, cron or rrule.",
    ),
]


def stored_schedule(schedule: IntervalScheduleIn | CronScheduleIn | RRuleScheduleIn) -> dict[str, Any]:
    return schedule.stored()


def _max_scheduled_runs(value: int | None) -> int | None:
    if value is not None and value > SCHEDULE_MAX_SCHEDULED_RUNS_LIMIT:
        raise ValueError(
            f"`max_scheduled_runs` must be less than or equal to {SCHEDULE_MAX_SCHEDULED_RUNS_LIMIT}."
        )
    return value


class DeploymentScheduleCreate(PrefectModel):
    active: bool = True
    schedule: ScheduleIn
    max_scheduled_runs: PositiveInt | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    slug: str | None = None
    replaces: str | None = None

    _check_max = field_validator("max_scheduled_runs")(classmethod(lambda cls, v: _max_scheduled_runs(v)))


class DeploymentScheduleUpdate(PrefectModel):
    active: bool | None = None
    schedule: ScheduleIn | None = None
    max_scheduled_runs: PositiveInt | None = None
    parameters: dict[str, Any] | None = None
    slug: str | None = None
    replaces: str | None = None

    _check_max = field_validator("max_scheduled_runs")(classmethod(lambda cls, v: _max_scheduled_runs(v)))


# --- deployments --------------------------------------------------------------------------------------


class ConcurrencyOptions(PrefectModel):
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"]
    grace_period_seconds: int | None = Field(default=None, ge=60, le=86400)


_OLD_FIELDS = ("worker_pool_queue_id", "worker_pool_name", "worker_pool_queue_name", "work_pool_queue_name")


def _without_old_fields(values: Any) -> Any:
    """Fields of clients older than 2.7.7, dropped rather than refused (as Prefect does)."""
    if isinstance(values, dict):
        return {key: value for key, value in values.items() if key not in _OLD_FIELDS}
    return values


def _no_both_limits(values: Any) -> Any:
    if (
        isinstance(values, dict)
        and values.get("concurrency_limit")
        and values.get("global_concurrency_limit_id")
    ):
        raise ValueError("A deployment cannot have both a concurrency limit and a global concurrency limit.")
    return values


class DeploymentCreate(PrefectModel):
    name: str = Field(min_length=1, max_length=255)
    flow_id: uuid.UUID
    paused: bool = False
    schedules: list[DeploymentScheduleCreate] = Field(default_factory=list)
    concurrency_limit: PositiveInt | None = None
    concurrency_options: ConcurrencyOptions | None = None
    global_concurrency_limit_id: uuid.UUID | None = None
    enforce_parameter_schema: bool = True
    parameter_openapi_schema: dict[str, Any] | None = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] | None = Field(default_factory=dict)
    pull_steps: list[dict[str, Any]] | None = None
    work_queue_name: str | None = None
    work_pool_name: str | None = None
    storage_document_id: uuid.UUID | None = None
    infrastructure_document_id: uuid.UUID | None = None
    description: str | None = None
    path: str | None = None
    version: str | None = None
    entrypoint: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _before(cls, values: Any) -> Any:
        return _no_both_limits(_without_old_fields(values))

    @model_validator(mode="after")
    def _parameters_conform(self) -> DeploymentCreate:
        if self.enforce_parameter_schema:
            parameter_schema_check(self.parameter_openapi_schema)
            parameters_check(self.parameters, self.parameter_openapi_schema, ignore_required=True)
        return self


class DeploymentUpdate(PrefectModel):
    """Only the fields sent change (``exclude_unset``)."""

    version: str | None = None
    description: str | None = None
    paused: bool = False
    schedules: list[DeploymentScheduleUpdate] | None = None
    concurrency_limit: PositiveInt | None = None
    concurrency_options: ConcurrencyOptions | None = None
    global_concurrency_limit_id: uuid.UUID | None = None
    parameters: dict[str, Any] | None = None
    parameter_openapi_schema: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] | None = None
    work_queue_name: str | None = None
    work_pool_name: str | None = None
    path: str | None = None
    job_variables: dict[str, Any] | None = None
    pull_steps: list[dict[str, Any]] | None = None
    entrypoint: str | None = None
    storage_document_id: uuid.UUID | None = None
    infrastructure_document_id: uuid.UUID | None = None
    enforce_parameter_schema: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _before(cls, values: Any) -> Any:
        return _no_both_limits(_without_old_fields(values))


class DeploymentFlowRunCreate(PrefectModel):
    state: StateCreate | None = None
    name: str | None = Field(default=None, max_length=255)
    parameters: dict[str, Any] = Field(default_factory=dict)
    enforce_parameter_schema: bool | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    infrastructure_document_id: uuid.UUID | None = None
    empirical_policy: FlowRunPolicy = Field(default_factory=FlowRunPolicy)
    tags: list[str] = Field(default_factory=list)
    idempotency_key: str | None = Field(default=None, max_length=255)
    labels: dict[str, Any] | None = None
    parent_task_run_id: uuid.UUID | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] | None = Field(default_factory=dict)


class ScheduledFlowRunsQuery(PrefectModel):
    """``deployments/get_scheduled_flow_runs``. The runner sends ``scheduled_before`` as
    ``str(datetime)`` (``2026-11-25 08:32:28.706391+00:00``, a space, not a ``T``), which pydantic
    parses like ISO 8601; a naive value is UTC."""

    deployment_ids: list[uuid.UUID]
    scheduled_before: dt.datetime | None = None
    limit: int | None = Field(default=None, ge=0, le=200)

    @field_validator("scheduled_before")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class DeploymentScheduleCreateList(RootModel[list[DeploymentScheduleCreate]]):
    """``POST deployments/{id}/schedules``: a JSON list."""


class BulkDelete(PrefectModel):
    """``deployments/bulk_delete`` and ``flows/bulk_delete``: the filter of the objects (under
    ``deployments`` or ``flows``, read by the filter grammar) and how many at most (1 to 50)."""

    limit: int = Field(default=50, ge=1, le=50)


#: A run-scheduling request creates at most this many runs per schedule (``schedule_dates`` walks
#: no further).
SCHEDULE_REQUEST_MAX_RUNS = 1000


class DeploymentScheduleRuns(PrefectModel):
    """``POST deployments/{id}/schedule``. ``min_time`` is seconds (Prefect's workaround for
    timedeltas in a body); naive datetimes are UTC."""

    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    min_time: float | None = Field(default=None, allow_inf_nan=False, ge=-1e9, le=1e9)
    min_runs: int | None = None
    max_runs: int | None = None

    @field_validator("start_time", "end_time")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and not 1900 <= value.year <= 9000:
            raise ValueError("must be between the years 1900 and 9000")
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value

    @field_validator("max_runs")
    @classmethod
    def _bounded(cls, value: int | None) -> int | None:
        return None if value is None else max(0, min(value, SCHEDULE_REQUEST_MAX_RUNS))


class DeploymentFlowRunCreateList(RootModel[list[DeploymentFlowRunCreate]]):
    """``POST deployments/{id}/create_flow_run/bulk``: a JSON list."""
