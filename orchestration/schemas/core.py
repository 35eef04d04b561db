"""Settings a flow run carries (Prefect's ``schemas/core.py``): its retry and pause policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestration.schemas.base import PrefectModel


class FlowRunPolicy(PrefectModel):
    max_retries: int = 0
    retry_delay_seconds: float = 0
    retries: int | None = None
    retry_delay: int | float | None = None
    pause_keys: list[str] | None = Field(default_factory=list)
    resuming: bool | None = False
    retry_type: Literal["in_process", "reschedule"] | None = None
