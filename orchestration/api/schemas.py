"""Request bodies of the Prefect wire API, validated with pydantic as Prefect's own server does.

Unknown fields are ignored (newer clients send more than older servers know); wrong types are a 422.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestration.models.states import StateType


class WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StateDetails(WireModel):
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    child_flow_run_id: uuid.UUID | None = None
    scheduled_time: dt.datetime | None = None
    cache_key: str | None = None
    cache_expiration: dt.datetime | None = None
    deferred: bool | None = False
    untrackable_result: bool = False
    pause_timeout: dt.datetime | None = None
    pause_reschedule: bool = False
    pause_key: str | None = None
    run_input_keyset: dict[str, str] | None = None
    refresh_cache: bool | None = None
    retriable: bool | None = None
    transition_id: uuid.UUID | None = None
    task_parameters_id: uuid.UUID | None = None
    traceparent: str | None = None
    deployment_concurrency_lease_id: uuid.UUID | None = None


STATE_DETAIL_KEYS = tuple(StateDetails.model_fields)


class StateCreate(WireModel):
    type: StateType
    name: str | None = None
    message: str | None = None
    data: Any = None
    state_details: StateDetails = Field(default_factory=StateDetails)
    # Accepted for old clients; the server stamps its own time.
    timestamp: dt.datetime | None = None


class FlowCreate(WireModel):
    name: str = Field(min_length=1, max_length=255)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] | None = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _no_slash(cls, value: str) -> str:
        if "/" in value or "%" in value:
            raise ValueError("Flow name cannot contain '/' or '%'")
        return value


class FlowUpdate(WireModel):
    tags: list[str] | None = None


class FlowRunPolicy(WireModel):
    max_retries: int = 0
    retry_delay_seconds: float = 0
    retries: int | None = None
    retry_delay: int | float | None = None
    pause_keys: list[str] | None = Field(default_factory=list)
    resuming: bool | None = False
    retry_type: Literal["in_process", "reschedule"] | None = None


class FlowRunCreate(WireModel):
    flow_id: uuid.UUID
    name: str | None = Field(default=None, max_length=255)
    state: StateCreate | None = None
    flow_version: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    parent_task_run_id: uuid.UUID | None = None
    infrastructure_document_id: uuid.UUID | None = None
    empirical_policy: FlowRunPolicy = Field(default_factory=FlowRunPolicy)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] | None = None
    idempotency_key: str | None = Field(default=None, max_length=255)
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] | None = None
    deployment_id: uuid.UUID | None = None


class FlowRunUpdate(WireModel):
    name: str | None = Field(default=None, max_length=255)
    flow_version: str | None = None
    parameters: dict[str, Any] | None = None
    empirical_policy: FlowRunPolicy | None = None
    tags: list[str] | None = None
    infrastructure_pid: str | None = None
    job_variables: dict[str, Any] | None = None


class SetState(WireModel):
    state: StateCreate
    force: bool = False


class LogCreate(WireModel):
    name: str = Field(max_length=255)
    level: int
    message: str
    timestamp: dt.datetime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    worker_id: uuid.UUID | None = None


class ArtifactCreate(WireModel):
    key: str | None = Field(default=None, max_length=255)
    type: str | None = Field(default=None, max_length=64)
    description: str | None = None
    data: Any = None
    metadata_: dict[str, Any] | None = None
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None

    @field_validator("key")
    @classmethod
    def _key_chars(cls, value: str | None) -> str | None:
        if value is not None and not all(ch.islower() or ch.isdigit() or ch == "-" for ch in value):
            raise ValueError("Artifact key must only contain lowercase letters, numbers, and dashes.")
        return value


class ArtifactUpdate(WireModel):
    data: Any = None
    description: str | None = None
    metadata_: dict[str, Any] | None = None


class VariableCreate(WireModel):
    name: str = Field(min_length=1, max_length=255)
    value: Any = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_chars(cls, value: str) -> str:
        if not all(ch.islower() or ch.isdigit() or ch in "-_" for ch in value):
            raise ValueError(
                "Variable name must only contain lowercase letters, numbers, dashes and underscores."
            )
        return value


class VariableUpdate(WireModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    value: Any = None
    tags: list[str] | None = None

    _name_chars = field_validator("name")(
        classmethod(lambda cls, v: v if v is None else VariableCreate._name_chars(v))
    )
