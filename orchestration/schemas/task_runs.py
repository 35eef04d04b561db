"""Request bodies of the task-run routes (Prefect's ``TaskRunCreate``, ``TaskRunUpdate``,
``TaskRunPolicy``, the history request and the task-worker filter), validated as Prefect's server
validates them. Unknown fields are ignored; wrong types are a 422."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import Field, field_validator, model_validator

from orchestration.schemas.base import PrefectModel
from orchestration.schemas.states import StateCreate


class TaskRunPolicy(PrefectModel):
    """How a task run retries. The deprecated ``max_retries``/``retry_delay_seconds`` stand in
    for ``retries``/``retry_delay`` when those are unset, as in Prefect."""

    max_retries: int = 0
    retry_delay_seconds: float = 0
    retries: int | None = None
    retry_delay: int | float | list[int] | list[float] | None = None
    retry_jitter_factor: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _deprecated_fields(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if not values.get("retries") and values.get("max_retries", 0) not in (0, None):
            values["retries"] = values["max_retries"]
        if not values.get("retry_delay") and values.get("retry_delay_seconds", 0) not in (0, None):
            values["retry_delay"] = values["retry_delay_seconds"]
        return values

    @field_validator("retry_delay")
    @classmethod
    def _at_most_50(cls, value):
        if isinstance(value, list) and len(value) > 50:
            raise ValueError("Can not configure more than 50 retry delays per task.")
        return value

    @field_validator("retry_jitter_factor")
    @classmethod
    def _not_negative(cls, value):
        if value is not None and value < 0:
            raise ValueError("`retry_jitter_factor` must be >= 0.")
        return value


class TaskRunCreate(PrefectModel):
    id: uuid.UUID | None = None
    state: StateCreate | None = None
    name: str | None = Field(default=None, max_length=255)
    flow_run_id: uuid.UUID | None = None
    task_key: str = Field(max_length=255)
    dynamic_key: str = Field(max_length=255)
    cache_key: str | None = None
    cache_expiration: dt.datetime | None = None
    task_version: str | None = Field(default=None, max_length=255)
    empirical_policy: TaskRunPolicy = Field(default_factory=TaskRunPolicy)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] | None = Field(default_factory=dict)
    task_inputs: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


class TaskRunUpdate(PrefectModel):
    name: str | None = Field(default=None, max_length=255)


class RunHistoryRequest(PrefectModel):
    history_start: dt.datetime
    history_end: dt.datetime
    history_interval_seconds: float

    @field_validator("history_start", "history_end")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class TaskWorkerFilter(PrefectModel):
    task_keys: list[str]


class TaskWorkersRequest(PrefectModel):
    task_worker_filter: TaskWorkerFilter | None = None
