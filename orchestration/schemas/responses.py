"""What orchestration answers (Prefect's ``schemas/responses.py``): the status of a proposed
transition, its details (Prefect's discriminated union) and the result of ``set_flow_run_state``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from orchestration.models import FlowRunState


class SetStateStatus(enum.StrEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    ABORT = "ABORT"
    WAIT = "WAIT"


def accept_details() -> dict[str, Any]:
    return {"type": "accept_details"}


def reject_details(reason: str | None) -> dict[str, Any]:
    return {"type": "reject_details", "reason": reason}


def abort_details(reason: str | None) -> dict[str, Any]:
    return {"type": "abort_details", "reason": reason}


def wait_details(delay_seconds: int, reason: str | None) -> dict[str, Any]:
    return {"type": "wait_details", "delay_seconds": int(delay_seconds), "reason": reason}


@dataclass
class OrchestrationResult:
    """What ``POST /flow_runs/{id}/set_state`` answers. ``state`` is the new state row when one
    was written, else the run's current state (``None`` only for a run without one). ``written``
    tells the view to answer 201 rather than 200."""

    status: SetStateStatus
    state: FlowRunState | None
    details: dict[str, Any] = field(default_factory=accept_details)
    written: bool = False
