"""States as Prefect's client proposes them (``StateCreate``, ``StateDetails``) and as it reads a
stored state row back (:func:`state_to_wire`, Prefect's ``State``).

The state types themselves (``StateType``) are a column of the models (``orchestration.models.states``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import Field

from orchestration.models.states import StateType
from orchestration.schemas.base import PrefectModel, iso


class StateDetails(PrefectModel):
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


class StateCreate(PrefectModel):
    type: StateType
    name: str | None = None
    message: str | None = None
    data: Any = None
    state_details: StateDetails = Field(default_factory=StateDetails)
    # Accepted for old clients; the server stamps its own time.
    timestamp: dt.datetime | None = None


def state_details_to_wire(details: dict | None) -> dict[str, Any]:
    details = details or {}
    result = {key: details.get(key) for key in STATE_DETAIL_KEYS}
    result["deferred"] = details.get("deferred", False)
    result["untrackable_result"] = bool(details.get("untrackable_result", False))
    result["pause_reschedule"] = bool(details.get("pause_reschedule", False))
    return result


def state_to_wire(state) -> dict[str, Any] | None:
    """A stored state row (flow run or task run) in Prefect's ``State`` shape."""
    if state is None:
        return None
    return {
        "id": str(state.id),
        "type": state.type,
        "name": state.name,
        "timestamp": iso(state.timestamp),
        "message": state.message,
        "data": state.data,
        "state_details": state_details_to_wire(state.state_details),
    }
