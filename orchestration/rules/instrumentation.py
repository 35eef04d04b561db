"""Flow-run state-change events (``prefect.flow-run.<State name>``), shaped as Prefect's server
shapes them (``prefect/server/models/events.py`` ``flow_run_state_change_event``). Automations
and the ``/events/out`` cancellation observer match on them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.apps import apps

from orchestration.events import services as event_services
from orchestration.models import FlowRun, FlowRunState
from orchestration.models.states import StateType
from orchestration.rules.base import BaseUniversalTransform, OrchestrationContext, state_details_of

#: State messages can carry whole tracebacks or results: keep events bounded.
TRUNCATE_STATE_MESSAGES_AT = 100_000
#: ``follows`` links two state events only when they are this close in time.
TIGHT_TIMING = dt.timedelta(minutes=5)


def truncated_to(length: int, value: str | None) -> str:
    if not value:
        return ""
    if len(value) <= length:
        return value
    half = length // 2
    beginning, end = value[:half], value[-half:]
    omitted = len(value) - (len(beginning) + len(end))
    return f"{beginning}...{omitted} additional characters...{end}"


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def state_payload(state: FlowRunState | None) -> dict[str, str] | None:
    """The essential string parts of a state, for an event payload."""
    if state is None:
        return None
    payload = {"type": StateType(state.type).value}
    if state.name:
        payload["name"] = state.name
    if state.message:
        payload["message"] = truncated_to(TRUNCATE_STATE_MESSAGES_AT, state.message)
    if state.type == StateType.PAUSED:
        payload["pause_reschedule"] = str(state_details_of(state).pause_reschedule).lower()
    return payload


def _named_row(model_name: str, row_id: uuid.UUID | None, *, workspace_id: uuid.UUID) -> Any:
    """A row of the run's workspace, of an orchestration model that may not exist yet in this
    codebase (deployments, work queues and pools arrive with the scheduling work), or ``None``."""
    if row_id is None:
        return None
    try:
        model = apps.get_model("orchestration", model_name)
    except LookupError:
        return None
    return model.objects.for_workspace(workspace_id).filter(pk=row_id).first()


def _related_resource(kind: str, role: str, row_id: Any, name: str | None, **extra: str) -> dict[str, str]:
    resource = {"prefect.resource.id": f"prefect.{kind}.{row_id}", "prefect.resource.role": role}
    if name is not None:
        resource["prefect.resource.name"] = name
    resource.update(extra)
    return resource


def flow_run_related_resources(run: FlowRun) -> list[dict[str, str]]:
    """Flow, deployment, work queue, work pool, parent task run, then tags (of all of them,
    sorted), then the creator when a deployment or automation created the run."""
    related: list[dict[str, str]] = []
    tags: set[str] = set(run.tags or [])

    flow = run.flow
    related.append(_related_resource("flow", "flow", flow.id, flow.name))
    tags |= set(flow.tags or [])

    if run.deployment_id:
        deployment = _named_row("Deployment", run.deployment_id, workspace_id=run.workspace_id)
        related.append(
            _related_resource(
                "deployment", "deployment", run.deployment_id, getattr(deployment, "name", None)
            )
        )
        tags |= set(getattr(deployment, "tags", None) or [])
    if run.work_queue_id:
        queue = _named_row("WorkQueue", run.work_queue_id, workspace_id=run.workspace_id)
        related.append(
            _related_resource(
                "work-queue",
                "work-queue",
                run.work_queue_id,
                getattr(queue, "name", None) or run.work_queue_name,
            )
        )
    if run.work_pool_id:
        pool = _named_row("WorkPool", run.work_pool_id, workspace_id=run.workspace_id)
        extra = {"prefect.work-pool.type": pool.type} if getattr(pool, "type", None) else {}
        related.append(
            _related_resource(
                "work-pool",
                "work-pool",
                run.work_pool_id,
                getattr(pool, "name", None) or run.work_pool_name,
                **extra,
            )
        )
    if run.parent_task_run_id:
        task_run = _named_row("TaskRun", run.parent_task_run_id, workspace_id=run.workspace_id)
        if task_run is not None:
            related.append(_related_resource("task-run", "task-run", task_run.id, task_run.name))
            tags |= set(task_run.tags or [])

    related += [
        {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"} for tag in sorted(tags)
    ]

    created_by = run.created_by or {}
    creator_kind = {"DEPLOYMENT": "deployment", "AUTOMATION": "automation"}.get(created_by.get("type") or "")
    if creator_kind and created_by.get("id"):
        creator = {
            "prefect.resource.id": f"prefect.{creator_kind}.{created_by['id']}",
            "prefect.resource.role": "creator",
        }
        if created_by.get("display_value"):
            creator["prefect.resource.name"] = created_by["display_value"]
        related.append(creator)
    return related


def flow_run_state_change_event(
    *, run: FlowRun, initial_state: FlowRunState | None, validated_state: FlowRunState
) -> dict[str, Any]:
    """The event for ``run`` entering ``validated_state``. Its id is the state's id, which orders
    state events; ``follows`` names the previous state's event when the two are close in time."""
    occurred = validated_state.timestamp
    tight = initial_state is not None and -TIGHT_TIMING < occurred - initial_state.timestamp < TIGHT_TIMING
    return {
        "id": str(validated_state.id),
        "occurred": _iso(occurred).replace("+00:00", "Z"),
        "event": f"prefect.flow-run.{validated_state.name}",
        "resource": {
            "prefect.resource.id": f"prefect.flow-run.{run.id}",
            "prefect.resource.name": run.name,
            "prefect.run-count": str(run.run_count),
            "prefect.state-message": truncated_to(TRUNCATE_STATE_MESSAGES_AT, validated_state.message),
            "prefect.state-name": validated_state.name or "",
            "prefect.state-timestamp": _iso(occurred),
            "prefect.state-type": StateType(validated_state.type).value,
        },
        "related": flow_run_related_resources(run),
        "payload": {
            "intended": {
                "from": StateType(initial_state.type).value if initial_state is not None else None,
                "to": StateType(validated_state.type).value,
            },
            "initial_state": state_payload(initial_state),
            "validated_state": state_payload(validated_state),
        },
        "follows": str(initial_state.id) if tight and initial_state is not None else None,
    }


class InstrumentFlowRunStateTransitions(BaseUniversalTransform):
    """Every state written (an accepted proposal, or the state a rejection put in its place)
    is announced with an event, recorded once the transaction commits."""

    def after_transition(self, context: OrchestrationContext) -> None:
        if context.proposed_state is None or context.validated_state is None or not context.written:
            return
        event = flow_run_state_change_event(
            run=context.run, initial_state=context.initial_state, validated_state=context.validated_state
        )
        event_services.event_record_on_commit(workspace_id=context.run.workspace_id, event=event)
