"""Bulk operations on flow runs (Prefect's ``bulk_delete`` and ``bulk_set_state`` routes): each
run of the filter, up to the limit, goes through the one writer for it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from core.errors import AppError
from orchestration.schemas.responses import OrchestrationResult, SetStateStatus, abort_details
from orchestration.schemas.states import StateCreate
from orchestration.selectors.filters import filter_queryset, ordering
from orchestration.services.flow_runs import flow_runs_delete
from orchestration.services.orchestration import set_flow_run_state


def _matching_ids(flow_runs: dict[str, Any] | None, limit: int) -> list[uuid.UUID]:
    qs = filter_queryset("flow_runs", {"flow_runs": flow_runs}).order_by(*ordering("flow_runs", None))
    return list(qs.values_list("id", flat=True)[:limit])


def flow_runs_bulk_delete(*, flow_runs: dict[str, Any] | None, limit: int) -> list[uuid.UUID]:
    return flow_runs_delete(flow_run_ids=_matching_ids(flow_runs, limit))


@dataclass
class BulkStateResult:
    flow_run_id: uuid.UUID
    result: OrchestrationResult


def flow_runs_bulk_set_state(
    *,
    flow_runs: dict[str, Any] | None,
    state: StateCreate,
    force: bool,
    limit: int,
    actor: Any = None,
    client_version: str | None = None,
) -> list[BulkStateResult]:
    """Propose ``state`` to each matching run in turn, each in its own transaction, through
    ``set_flow_run_state``; a run that cannot take it gets an ABORT result of its own (as Prefect
    answers), and the others go on."""
    results = []
    for flow_run_id in _matching_ids(flow_runs, limit):
        try:
            result = set_flow_run_state(
                flow_run_id=flow_run_id, state=state, force=force, actor=actor, client_version=client_version
            )
        except AppError as error:
            result = OrchestrationResult(
                status=SetStateStatus.ABORT, state=None, details=abort_details(error.message)
            )
        results.append(BulkStateResult(flow_run_id, result))
    return results
