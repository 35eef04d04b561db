"""Bodies of saved searches and the default result storage (Prefect's ``SavedSearchCreate`` and
``ServerDefaultResultStorageUpdate``)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestration.schemas.base import PrefectModel


class SavedSearchFilter(PrefectModel):
    object: str
    property: str
    type: str
    operation: str
    value: Any


class SavedSearchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    filters: list[SavedSearchFilter] = []


class ResultStorageUpdate(PrefectModel):
    default_result_storage_block_id: uuid.UUID
