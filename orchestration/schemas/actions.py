"""Request bodies of flows, flow runs, logs, artifacts and variables (Prefect's
``schemas/actions.py``), validated with pydantic as Prefect's own server does. Services take them.

Unknown fields are ignored (newer clients send more than older servers know); wrong types are a 422.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import Field, field_validator

from orchestration.schemas.base import PrefectModel
from orchestration.schemas.core import FlowRunPolicy
from orchestration.schemas.states import StateCreate


class FlowCreate(PrefectModel):
    name: str = Field(min_length=1, max_length=255)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] | None = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _no_slash(cls, value: str) -> str:
        if "/" in value or "%" in value:
            raise ValueError("Flow name cannot contain '/' or '%'")
        return value


class FlowUpdate(PrefectModel):
    tags: list[str] | None = None


class FlowRunCreate(PrefectModel):
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


class FlowRunUpdate(PrefectModel):
    name: str | None = Field(default=None, max_length=255)
    flow_version: str | None = None
    parameters: dict[str, Any] | None = None
    empirical_policy: FlowRunPolicy | None = None
    tags: list[str] | None = None
    infrastructure_pid: str | None = None
    job_variables: dict[str, Any] | None = None


class SetState(PrefectModel):
    state: StateCreate
    force: bool = False


class LogCreate(PrefectModel):
    name: str = Field(max_length=255)
    level: int
    message: str
    timestamp: dt.datetime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    worker_id: uuid.UUID | None = None


class ArtifactCreate(PrefectModel):
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


class ArtifactUpdate(PrefectModel):
    data: Any = None
    description: str | None = None
    metadata_: dict[str, Any] | None = None


class VariableCreate(PrefectModel):
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


class VariableUpdate(PrefectModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    value: Any = None
    tags: list[str] | None = None

    _name_chars = field_validator("name")(
        classmethod(lambda cls, v: v if v is None else VariableCreate._name_chars(v))
    )
