"""Request bodies of the flow-run routes beyond create/update/set_state (Prefect's ``api/flow_runs.py``
declares them as ``Body`` parameters): run input, resume, bulk operations and history."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import Field, field_validator

from orchestration.schemas.base import PrefectModel
from orchestration.schemas.states import StateCreate

#: Prefect's ``LOWERCASE_LETTERS_NUMBERS_AND_DASHES_ONLY_REGEX`` (``FlowRunInput.key``).
INPUT_KEY = re.compile(r"^[a-z0-9-]*$")
#: Prefect's ``BULK_OPERATION_LIMIT``.
BULK_OPERATION_LIMIT = 50


class FlowRunInputCreate(PrefectModel):
    key: str = Field(max_length=255)
    value: str
    sender: str | None = Field(default=None, max_length=255)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not INPUT_KEY.match(value):
            raise ValueError("key must only contain lowercase letters, numbers, and dashes.")
        return value


class FlowRunInputFilter(PrefectModel):
    prefix: str
    limit: int = 1
    exclude_keys: list[str] = Field(default_factory=list)


class FlowRunResume(PrefectModel):
    run_input: dict[str, Any] | None = None


class FlowRunBulkDelete(PrefectModel):
    flow_runs: dict[str, Any] | None = None
    limit: int = Field(default=BULK_OPERATION_LIMIT, ge=1, le=BULK_OPERATION_LIMIT)


class FlowRunBulkSetState(PrefectModel):
    flow_runs: dict[str, Any] | None = None
    state: StateCreate
    force: bool = False
    limit: int = Field(default=BULK_OPERATION_LIMIT, ge=1, le=BULK_OPERATION_LIMIT)


class FlowRunHistory(PrefectModel):
    history_start: dt.datetime
    history_end: dt.datetime
    history_interval_seconds: float


class FlowRunPaginate(PrefectModel):
    page: int = Field(default=1, ge=1)
