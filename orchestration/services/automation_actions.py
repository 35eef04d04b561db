"""Running a firing's actions (Prefect's ``server/events/actions.py``), each through the service the
API uses, inside the automation's workspace.

An action runs once per firing: its ``AutomationActionRun`` row, unique per (firing, action index),
is written in the transaction that runs it, so a second runner of the same firing waits for the
first and then skips it. Each action emits ``prefect.automation.action.triggered`` and then
``…action.executed`` or ``…action.failed`` with the reason, as Prefect's actions do.

Runs here: ``do-nothing``, ``run-deployment`` (parameters, and job variables too, rendered from the
triggering event in the one Jinja sandbox), ``pause-deployment``/``resume-deployment``, ``cancel-flow-run``,
``change-flow-run-state`` and ``suspend-flow-run`` (through ``set_flow_run_state``),
``resume-flow-run``, ``delete-flow-run``, ``pause-``/``resume-work-pool``, ``pause-``/``resume-work-queue``,
``pause-automation``/``resume-automation``, and ``call-webhook``/``send-notification``
(``services.notifications``, through ``core.outbound``). Any other action type fails with the reason
that it is not supported yet. An action that fails with a reason (``ActionFailed``) is not retried;
one that raises anything else rolls back and raises ``ActionsToRetry`` for the task to retry.

Templates see what Prefect's do: ``automation``, ``event``, ``labels``, ``firing`` and the flow run,
task run, flow, deployment, work queue and work pool the event names, with the URL filters linking
into the workspace's UI. What an action reports from outside (a receiver's answer, an error) is
made storable and bounded before its row and events keep it. An outbound action claimed and then
cut off (its process died mid-call) stays ``running``; ``automation_action_runs_fail_stalled``, run
by the stalled-firing sweep, fails it with the reason after ``AUTOMATION_ACTION_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from core.errors import AppError, NotFound
from core.parsers import storable
from orchestration.events.services import events_record_on_commit
from orchestration.models import (
    Automation,
    AutomationActionRun,
    AutomationFiring,
    Deployment,
    Flow,
    FlowRun,
    TaskRun,
    TaskRunState,
    Variable,
    WorkPool,
    WorkQueue,
)
from orchestration.models.states import StateType
from orchestration.schemas import hydration
from orchestration.schemas.automations import AutomationPartialUpdate, upgrade_v1_templates
from orchestration.schemas.deployments import DeploymentFlowRunCreate
from orchestration.schemas.states import StateCreate, StateDetails
from orchestration.schemas.templates import (
    TemplateLabels,
    TemplateObject,
    TemplateRenderError,
    TemplateResource,
    template_render,
    template_ui_base,
)
from orchestration.selectors.work_pools import work_pool_statuses, work_queue_status
from orchestration.services.automations import automation_patch
from orchestration.services.deployments import (
    deployment_flow_run_create,
    deployment_set_paused,
    deployment_status,
)
from orchestration.services.flow_run_inputs import flow_run_resume
from orchestration.services.flow_runs import flow_run_delete
from orchestration.services.notifications import (
    OUTBOUND_ACTIONS,
    ActionFailed,
    call_webhook,
    send_notification,
)
from orchestration.services.orchestration import set_flow_run_state
from orchestration.services.work_pools import work_pool_update, work_queue_update
from tenants.models import Workspace
from tenants.scoping import workspace_scope

logger = logging.getLogger(__name__)


class ActionsToRetry(Exception):
    """An action raised something other than ``ActionFailed`` (a bug, a lost connection): as
    Prefect's actions consumer leaves such a message to be delivered again, its transaction was
    rolled back (so nothing of it happened, and it is not marked as run) and the firing's task
    tries again; on the last attempt it is recorded as failed."""


class _Run:
    """One action of one firing (Prefect's ``TriggeredAction``)."""

    def __init__(
        self, firing: AutomationFiring, index: int, entry: dict[str, Any], automation: _Automation
    ) -> None:
        self.firing = firing
        # The labels Prefect's action events give the automation, and its fields for templates.
        self.automation = automation.labels
        self.automation_fields = automation.fields
        self.index = index
        self.action = entry["action"]
        # `actions_on_trigger` carry the triggered event as theirs; `actions` the firing's.
        self.event = entry.get("event") or firing.triggering_event or None
        self.related: list[dict[str, str]] = []
        self.details: dict[str, Any] = {}
        self._context: dict[str, Any] | None = None

    def id_of_kind(self, kind: str, field: str) -> uuid.UUID:
        if self.action.get("source") == "selected":  # flow-run actions have no source: inferred
            return uuid.UUID(str(self.action[field]))
        if not self.event:
            raise ActionFailed(f"No event to infer the {kind.removeprefix('prefect.').replace('-', ' ')}")
        for resource in [self.event.get("resource") or {}, *(self.event.get("related") or [])]:
            resource_id = resource.get("prefect.resource.id") or ""
            if resource_id.startswith(f"{kind}."):
                try:
                    return uuid.UUID(resource_id[len(kind) + 1 :])
                except ValueError:
                    continue
        raise ActionFailed(f"No {kind.removeprefix('prefect.').replace('-', ' ')} could be inferred")

    def template_context(self) -> dict[str, Any]:
        """Prefect's ``JinjaTemplateAction._template_context``: the automation, the event, its
        labels, the firing, and the Prefect objects the event names (read once per action)."""
        if self._context is not None:
            return self._context
        firings = _firing_tree(self.firing)
        context = {
            "automation": TemplateObject("automation", {"id": str(self.firing.automation_id),
                                                        **self.automation_fields}),
            "event": _template_event(self.event),
            "labels": TemplateLabels(self.firing.triggering_labels or {}),
            "firing": _template_firing(self.firing),
            # Prefect's ``all_firings`` / ``all_events``: this firing and, for a compound or
            # sequence trigger, the child firings it consumed, depth first; their events.
            "firings": [_template_firing(f) for f in firings],
            "events": [_template_event(f.triggering_event) for f in firings if f.triggering_event],
        }  # fmt: skip
        context.update(_native_objects(self.event))
        self._context = context
        return context

    def render(self, *templates: str) -> list[str]:
        """Prefect's ``JinjaTemplateAction._render``, in the one sandbox."""
        context = self.template_context()
        try:
            return [template_render(template, context) for template in templates]
        except TemplateRenderError as error:
            self.details["template_error"] = str(error)
            raise ActionFailed(f"Template rendering failed: {error}") from error


#: How deep ``firings`` follows child firings (a composite trigger's nesting is bounded likewise).
_FIRING_TREE_DEPTH = 20


def _firing_tree(firing: AutomationFiring, depth: int = 0) -> list[AutomationFiring]:
    """The firing, then the child firings a composite firing consumed (named by its
    ``window_key``, ``firings <id> <id>…``), each followed by its own, as Prefect's
    ``Firing.all_firings``."""
    key = firing.window_key or ""
    if not key.startswith("firings ") or depth >= _FIRING_TREE_DEPTH:
        return [firing]
    ids = []
    for text in key.split()[1:]:
        try:
            ids.append(uuid.UUID(text))
        except ValueError:
            continue
    children = AutomationFiring.objects.filter(id__in=ids).order_by("triggered", "id")
    return [firing, *(f for child in children for f in _firing_tree(child, depth + 1))]


def _template_firing(firing: AutomationFiring) -> TemplateObject:
    """A firing as Prefect's ``Firing`` reads in a template."""
    return TemplateObject("firing", {
        "id": str(firing.id), "trigger": {"id": str(firing.trigger_id)}, "triggered": firing.triggered,
        "triggering_labels": TemplateLabels(firing.triggering_labels or {}),
        "triggering_event": _template_event(firing.triggering_event),
    })  # fmt: skip


def _resource_ids(event: dict[str, Any] | None, kind: str) -> list[uuid.UUID]:
    found = []
    for resource in [(event or {}).get("resource") or {}, *((event or {}).get("related") or [])]:
        resource_id = str(resource.get("prefect.resource.id") or "")
        if resource_id.startswith(f"{kind}."):
            try:
                found.append(uuid.UUID(resource_id[len(kind) + 1 :]))
            except ValueError:
                continue
    return found


def _first_resource(event: dict[str, Any], kind: str) -> dict[str, Any]:
    for resource in [event.get("resource") or {}, *(event.get("related") or [])]:
        if str(resource.get("prefect.resource.id") or "").startswith(f"{kind}."):
            return resource
    return {}


def _datetime(value: Any) -> Any:
    """An event's ISO time as a datetime (so ``humanize_*`` filters take it), else as it was."""
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _template_event(event: dict[str, Any] | None) -> TemplateObject | None:
    """The event as Prefect's ``ReceivedEvent`` reads in a template: its times as datetimes, its
    resource and related resources as resources (``.id``, ``.name``, ``.role``)."""
    if not event:
        return None
    fields = dict(event)
    fields["occurred"] = _datetime(event.get("occurred"))
    fields["received"] = _datetime(event.get("received"))
    fields["resource"] = TemplateResource(event.get("resource") or {})
    fields["related"] = [TemplateResource(r) for r in event.get("related") or [] if isinstance(r, dict)]
    return TemplateObject("received-event", fields)


_STATE_LABELS = (
    "prefect.state-message",
    "prefect.state-name",
    "prefect.state-timestamp",
    "prefect.state-type",
)


def _state(run: Any, state: Any, resource: dict[str, Any]) -> dict[str, Any] | None:
    """The run's state as the event saw it when the event carries it (Prefect's
    ``instantiate_object``: the run may have moved on since), else its current state."""
    if all(label in resource for label in _STATE_LABELS):
        return {"type": resource["prefect.state-type"], "name": resource["prefect.state-name"],
                "message": resource["prefect.state-message"],
                "timestamp": _datetime(resource["prefect.state-timestamp"])}  # fmt: skip
    if state is not None:
        return {"id": str(state.id), "type": state.type, "name": state.name, "message": state.message,
                "timestamp": state.timestamp, "state_details": state.state_details or {}}  # fmt: skip
    if run.state_type:
        return {
            "type": run.state_type,
            "name": run.state_name,
            "message": None,
            "timestamp": run.state_timestamp,
        }
    return None


def _run_fields(run: Any) -> dict[str, Any]:
    return {
        "id": str(run.id), "name": run.name, "state_type": run.state_type, "state_name": run.state_name,
        "run_count": run.run_count, "expected_start_time": run.expected_start_time,
        "next_scheduled_start_time": run.next_scheduled_start_time, "start_time": run.start_time,
        "end_time": run.end_time, "total_run_time": run.total_run_time, "tags": run.tags, "labels": run.labels,
        "created": run.created, "updated": run.updated,
    }  # fmt: skip


def _id(value: Any) -> str | None:
    return str(value) if value else None


def _native_objects(event: dict[str, Any] | None) -> dict[str, Any]:
    """Prefect's ``_relevant_native_objects``: the flow run, task run, flow, deployment, work queue
    and work pool the event names (the first of each kind), with the fields Prefect's API answers
    that templates use (``{{ flow_run.state.timestamp }}``, ``{{ deployment.status }}``,
    ``{{ work_pool.status }}``…), times as datetimes."""
    objects: dict[str, Any] = {}
    if not event:
        return objects
    now = timezone.now()
    if ids := _resource_ids(event, "prefect.flow-run"):
        run = FlowRun.objects.select_related("state").filter(id=ids[0]).first()
        if run is not None:
            objects["flow_run"] = TemplateObject("flow-run", {
                **_run_fields(run), "flow_id": str(run.flow_id), "deployment_id": _id(run.deployment_id),
                "deployment_version": run.deployment_version, "flow_version": run.flow_version,
                "parameters": run.parameters, "idempotency_key": run.idempotency_key,
                "parent_task_run_id": _id(run.parent_task_run_id), "auto_scheduled": run.auto_scheduled,
                "job_variables": run.job_variables, "work_queue_id": _id(run.work_queue_id),
                "work_queue_name": run.work_queue_name, "work_pool_id": _id(run.work_pool_id),
                "work_pool_name": run.work_pool_name, "infrastructure_pid": run.infrastructure_pid,
                "state": _state(run, run.state, _first_resource(event, "prefect.flow-run")),
            })  # fmt: skip
    if ids := _resource_ids(event, "prefect.task-run"):
        task_run = TaskRun.objects.filter(id=ids[0]).first()
        if task_run is not None:
            state = TaskRunState.objects.filter(id=task_run.state_id).first() if task_run.state_id else None
            objects["task_run"] = TemplateObject("task-run", {
                **_run_fields(task_run), "flow_run_id": _id(task_run.flow_run_id), "task_key": task_run.task_key,
                "dynamic_key": task_run.dynamic_key, "task_version": task_run.task_version,
                "state": _state(task_run, state, _first_resource(event, "prefect.task-run")),
            })  # fmt: skip
    if ids := _resource_ids(event, "prefect.flow"):
        flow = Flow.objects.filter(id=ids[0]).first()
        if flow is not None:
            objects["flow"] = TemplateObject("flow", {"id": str(flow.id), "name": flow.name, "tags": flow.tags,
                                                      "labels": flow.labels, "created": flow.created,
                                                      "updated": flow.updated})  # fmt: skip
    if ids := _resource_ids(event, "prefect.deployment"):
        deployment = Deployment.objects.select_related("work_queue__work_pool").filter(id=ids[0]).first()
        if deployment is not None:
            queue = deployment.work_queue
            objects["deployment"] = TemplateObject("deployment", {
                "id": str(deployment.id), "name": deployment.name, "flow_id": str(deployment.flow_id),
                "version": deployment.version, "description": deployment.description,
                "paused": deployment.paused, "status": deployment_status(deployment, now=now),
                "tags": deployment.tags, "labels": deployment.labels, "parameters": deployment.parameters,
                "job_variables": deployment.job_variables, "work_queue_id": _id(deployment.work_queue_id),
                "work_queue_name": deployment.work_queue_name,
                "work_pool_name": queue.work_pool.name if queue is not None else None,
                "entrypoint": deployment.entrypoint, "path": deployment.path,
                "last_polled": deployment.last_polled, "created": deployment.created, "updated": deployment.updated,
            })  # fmt: skip
    if ids := _resource_ids(event, "prefect.work-queue"):
        queue = WorkQueue.objects.select_related("work_pool").filter(id=ids[0]).first()
        if queue is not None:
            objects["work_queue"] = TemplateObject("work-queue", {
                "id": str(queue.id), "name": queue.name, "description": queue.description,
                "is_paused": queue.is_paused, "concurrency_limit": queue.concurrency_limit,
                "priority": queue.priority, "work_pool_id": _id(queue.work_pool_id),
                "work_pool_name": queue.work_pool.name if queue.work_pool is not None else None,
                "status": work_queue_status(queue, now=now), "last_polled": queue.last_polled,
                "created": queue.created, "updated": queue.updated,
            })  # fmt: skip
    if ids := _resource_ids(event, "prefect.work-pool"):
        pool = WorkPool.objects.filter(id=ids[0]).first()
        if pool is not None:
            objects["work_pool"] = TemplateObject("work-pool", {
                "id": str(pool.id), "name": pool.name, "description": pool.description, "type": pool.type,
                "is_paused": pool.is_paused, "concurrency_limit": pool.concurrency_limit,
                "status": work_pool_statuses([pool], now=now)[pool.id],
                "default_queue_id": _id(pool.default_queue_id), "created": pool.created, "updated": pool.updated,
            })  # fmt: skip
    return objects


def _render_values(run: _Run, values: dict[str, Any], what: str = "") -> dict[str, Any]:
    """Prefect's ``RunDeployment.render_parameters``: v1 string templates upgraded, then every
    ``__prefect_kind`` value hydrated, Jinja rendered from the event and workspace variables read.
    Job variables are rendered the same way (Prefect passes them through as they are)."""
    values = copy.deepcopy(values)
    upgrade_v1_templates(values)
    context = hydration.HydrationContext(
        workspace_variables=dict(Variable.objects.values_list("name", "value")),
        render_workspace_variables=True,
        render_jinja=True,
        jinja_context=run.template_context(),
    )
    rendered = hydration.hydrate(values, context)
    error = hydration.first_error(rendered)
    if error is not None:
        raise ActionFailed(f"Unable to create flow run from deployment: {what}{error.message}")
    return rendered


def _run_deployment(run: _Run) -> None:
    deployment_id = run.id_of_kind("prefect.deployment", "deployment_id")
    after = dt.timedelta(seconds=float(run.action.get("schedule_after") or 0))
    data = DeploymentFlowRunCreate(
        state=StateCreate(
            type=StateType.SCHEDULED,
            name="Scheduled",
            state_details=StateDetails(scheduled_time=timezone.now() + after),
        ),
        parameters=_render_values(run, run.action.get("parameters") or {}),
        idempotency_key=f"automation {run.firing.automation_id}, action {run.index}, invocation {run.firing.id}",
        job_variables=(
            _render_values(run, job_variables, "job variables: ")
            if (job_variables := run.action.get("job_variables"))
            else job_variables
        ),
    )
    flow_run, _ = deployment_flow_run_create(deployment_id=deployment_id, data=data)
    run.related.append(
        {"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.role": "flow-run",
         "prefect.resource.name": flow_run.name}
    )  # fmt: skip


def _pause_deployment(run: _Run, *, paused: bool) -> None:
    deployment_id = run.id_of_kind("prefect.deployment", "deployment_id")
    deployment_set_paused(deployment_id=deployment_id, paused=paused)
    run.related.append({"prefect.resource.id": f"prefect.deployment.{deployment_id}",
                        "prefect.resource.role": "target"})  # fmt: skip


def _flow_run_state(run: _Run, state: StateCreate, *, force: bool) -> None:
    flow_run_id = run.id_of_kind("prefect.flow-run", "flow_run_id")
    run.related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                        "prefect.resource.role": "target"})  # fmt: skip
    result = set_flow_run_state(flow_run_id=flow_run_id, state=state, force=force)
    status = getattr(result.status, "value", result.status)
    if str(status).upper() != "ACCEPT":
        reason = (result.details or {}).get("reason") or ""
        raise ActionFailed(f"Failed to set state: {reason}".rstrip(": "))


def _change_flow_run_state(run: _Run) -> None:
    action = run.action
    message = action.get("message") or f"State changed by Automation {run.firing.automation_id}"
    state = StateCreate(type=action["state"], name=action.get("name"), message=message)
    _flow_run_state(run, state, force=bool(action.get("force")))


def _cancel_flow_run(run: _Run) -> None:
    state = StateCreate(
        type=StateType.CANCELLING, name="Cancelling",
        message=f"Cancelled by Automation {run.firing.automation_id}",
    )  # fmt: skip
    _flow_run_state(run, state, force=False)


def _suspend_flow_run(run: _Run) -> None:
    state = StateCreate(
        type=StateType.PAUSED,
        name="Suspended",
        message=f"Suspended by Automation {run.firing.automation_id}",
        state_details=StateDetails(
            pause_timeout=timezone.now() + dt.timedelta(seconds=3600), pause_reschedule=True
        ),
    )
    _flow_run_state(run, state, force=False)


def _resume_flow_run(run: _Run) -> None:
    flow_run_id = run.id_of_kind("prefect.flow-run", "flow_run_id")
    run.related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                        "prefect.resource.role": "target"})  # fmt: skip
    result = flow_run_resume(flow_run_id=flow_run_id, run_input=None).result
    if str(getattr(result.status, "value", result.status)).upper() != "ACCEPT":
        raise ActionFailed(
            f"Failed to resume flow run: {(result.details or {}).get('reason') or ''}".rstrip(": ")
        )


def _delete_flow_run(run: _Run) -> None:
    """Prefect's ``delete-flow-run``: the run the event names, deleted as ``DELETE flow_runs/{id}``
    deletes it; one already gone fails with the API's reason."""
    flow_run_id = run.id_of_kind("prefect.flow-run", "flow_run_id")
    run.related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                        "prefect.resource.role": "target"})  # fmt: skip
    try:
        flow_run_delete(flow_run_id=flow_run_id)
    except NotFound as error:
        raise ActionFailed(error.message) from None


def _pause_work_pool(run: _Run, *, paused: bool) -> None:
    pool_id = run.id_of_kind("prefect.work-pool", "work_pool_id")
    pool = WorkPool.objects.filter(id=pool_id).first()
    if pool is None:
        raise ActionFailed(f"Work pool {pool_id} not found")
    run.related.append({"prefect.resource.id": f"prefect.work-pool.{pool.id}", "prefect.resource.name": pool.name,
                        "prefect.resource.role": "target"})  # fmt: skip
    work_pool_update(name=pool.name, changes={"is_paused": paused})


def _pause_work_queue(run: _Run, *, paused: bool) -> None:
    queue_id = run.id_of_kind("prefect.work-queue", "work_queue_id")
    queue = WorkQueue.objects.filter(id=queue_id).first()
    if queue is None:
        raise ActionFailed(f"Work queue {queue_id} not found")
    run.related.append({"prefect.resource.id": f"prefect.work-queue.{queue.id}",
                        "prefect.resource.name": queue.name, "prefect.resource.role": "target"})  # fmt: skip
    work_queue_update(queue_id=queue.id, changes={"is_paused": paused})


def _pause_automation(run: _Run, *, enabled: bool) -> None:
    automation_id = run.id_of_kind("prefect.automation", "automation_id")
    automation_patch(automation_id=automation_id, data=AutomationPartialUpdate(enabled=enabled))
    run.related.append({"prefect.resource.id": f"prefect.automation.{automation_id}",
                        "prefect.resource.role": "target"})  # fmt: skip


_ACTIONS = {
    "do-nothing": lambda run: None,
    "run-deployment": _run_deployment,
    "pause-deployment": lambda run: _pause_deployment(run, paused=True),
    "resume-deployment": lambda run: _pause_deployment(run, paused=False),
    "change-flow-run-state": _change_flow_run_state,
    "cancel-flow-run": _cancel_flow_run,
    "pause-automation": lambda run: _pause_automation(run, enabled=False),
    "resume-automation": lambda run: _pause_automation(run, enabled=True),
    "suspend-flow-run": _suspend_flow_run,
    "resume-flow-run": _resume_flow_run,
    "delete-flow-run": _delete_flow_run,
    "pause-work-pool": lambda run: _pause_work_pool(run, paused=True),
    "resume-work-pool": lambda run: _pause_work_pool(run, paused=False),
    "pause-work-queue": lambda run: _pause_work_queue(run, paused=True),
    "resume-work-queue": lambda run: _pause_work_queue(run, paused=False),
    "call-webhook": call_webhook,
    "send-notification": send_notification,
}


#: The longest reason or reported string an action's row and events keep.
REASON_CHARS = 2000


def _emit(run: _Run, *, failed_reason: str | None) -> None:
    firing = run.firing
    resource = {"prefect.resource.id": f"prefect.automation.{firing.automation_id}", **run.automation}
    details = {"action_index": run.index, "action_type": run.action.get("type"), "invocation": str(firing.id)}
    related = [*run.related, {"prefect.resource.id": f"prefect.event.{firing.triggered_event_id}",
                              "prefect.resource.role": "automation-triggered-event"}]  # fmt: skip
    if run.event:
        related.append({"prefect.resource.id": f"prefect.event.{run.event['id']}",
                        "prefect.resource.role": "triggering-event"})  # fmt: skip
    # What came from outside (an answer, a template's error) is made storable and bounded.
    related = storable(related, limit=REASON_CHARS)
    reason = {"reason": failed_reason} if failed_reason is not None else {}
    payload = storable({**details, **reason, **run.details}, limit=REASON_CHARS)
    triggered_id = uuid.uuid4()
    outcome = "failed" if failed_reason is not None else "executed"

    def record(payload: dict[str, Any]) -> None:
        # Both in one write: one INSERT of the two events and one of their resources.
        events_record_on_commit(
            workspace_id=firing.workspace_id,
            events=[
                {"id": str(triggered_id), "occurred": firing.triggered.isoformat(),
                 "event": "prefect.automation.action.triggered", "resource": resource, "related": related,
                 "payload": details},
                {"id": str(uuid.uuid4()), "occurred": timezone.now().isoformat(),
                 "event": f"prefect.automation.action.{outcome}", "resource": resource, "related": related,
                 "payload": payload, "follows": str(triggered_id)},
            ],
        )  # fmt: skip

    try:
        with transaction.atomic():
            record(payload)
    except DatabaseError:
        # The action is recorded all the same, announced without what it reported.
        logger.exception(
            "Automation %s action %d: its event could not be stored", firing.automation_id, run.index
        )
        record({**details, **storable(reason, limit=REASON_CHARS)})


class _Unexpected(Exception):
    pass


def _act(run: _Run, *, final_attempt: bool) -> str | None:
    """Run the action; the reason it failed, or None. Anything but an expected failure raises
    ``_Unexpected`` unless this is the last attempt."""
    handler = _ACTIONS.get(run.action.get("type"))
    if handler is None:
        return f"The action {run.action.get('type')!r} is not supported yet"
    try:
        # An outbound call holds no transaction (on SQLite that would hold the write lock).
        with nullcontext() if run.action.get("type") in OUTBOUND_ACTIONS else transaction.atomic():
            handler(run)
    except ActionFailed as error:
        return str(error)
    except AppError as error:
        return error.message
    except Exception as error:  # noqa: BLE001 - one action's bug must not stop the others
        logger.exception("Automation %s action %d raised", run.firing.automation_id, run.index)
        if not final_attempt:
            raise _Unexpected(repr(error)) from error
        return f"Unexpected error: {error!r}"
    return None


@dataclass(frozen=True)
class _Automation:
    labels: dict[str, str]
    fields: dict[str, Any]


_TEMPLATE_FIELDS = ("name", "description", "enabled", "tags", "trigger", "actions", "actions_on_trigger",
                    "actions_on_resolve")  # fmt: skip


def _automation_of(automation_id: uuid.UUID) -> _Automation:
    """The labels Prefect's action events give the automation (its name, trigger type and, for an
    event trigger, posture), and its fields as templates see them (``{{ automation.name }}``,
    ``{{ automation.description }}``)."""
    row = Automation.objects.filter(id=automation_id).values(*_TEMPLATE_FIELDS).first()
    if row is None:
        return _Automation(labels={}, fields={})
    trigger = row["trigger"] or {}
    labels = {"prefect.resource.name": row["name"], "prefect.trigger-type": str(trigger.get("type", "event"))}
    if trigger.get("type", "event") == "event":
        labels["prefect.posture"] = str(trigger.get("posture", "Reactive"))
    return _Automation(labels=labels, fields=row)


def _workspace_ui_base(workspace_id: uuid.UUID) -> str | None:
    """The workspace's UI (``PUBLIC_URL/account/<account>/workspace/<workspace>``, Prefect Cloud's
    form, where this server serves it), which the templates' ``ui_url`` filters link into."""
    account_id = Workspace.objects.filter(id=workspace_id).values_list("account_id", flat=True).first()
    if account_id is None:
        return None
    return f"{settings.PUBLIC_URL}/account/{account_id}/workspace/{workspace_id}"


def automation_firing_act(
    *, workspace_id: uuid.UUID, firing_id: uuid.UUID, final_attempt: bool = False
) -> int:
    """Run every action of the workspace's firing not run yet; returns how many ran now. Raises
    ``ActionsToRetry`` (after running the others) when one failed unexpectedly and this is not
    the last attempt."""
    ran = 0
    retry: list[str] = []
    with workspace_scope(workspace_id):
        firing = AutomationFiring.objects.filter(id=firing_id).first()
        if firing is None:
            return 0
        automation = _automation_of(firing.automation_id)
        with template_ui_base(_workspace_ui_base(workspace_id)):
            for index, entry in enumerate(firing.actions):
                run = _Run(firing, index, entry, automation)
                try:
                    ran += _run_once(run, final_attempt=final_attempt)
                except _Unexpected as error:
                    retry.append(f"action {index}: {error}")
    if retry:
        raise ActionsToRetry("; ".join(retry))
    return ran


def _run_once(run: _Run, *, final_attempt: bool) -> int:
    if run.action.get("type") in OUTBOUND_ACTIONS:
        return _run_outbound_once(run)
    with transaction.atomic():
        record = _claim(run)
        if record is None:
            return 0  # another runner ran it
        reason = _act(run, final_attempt=final_attempt)
        _finish(run, record, reason)
        return 1


def _claim(run: _Run) -> AutomationActionRun | None:
    try:
        with transaction.atomic():
            return AutomationActionRun.objects.create(
                workspace_id=run.firing.workspace_id, firing=run.firing, action_index=run.index,
                action_type=run.action.get("type", ""), state="running",
            )  # fmt: skip
    except IntegrityError:
        return None


def _finish(run: _Run, record: AutomationActionRun, reason: str | None) -> bool:
    """Record and announce how the claimed action ended; False (nothing recorded) when it is no
    longer ``running``: the stalled-action sweep failed it meanwhile, and announced it."""
    if reason is not None:
        reason = storable(reason, limit=REASON_CHARS)
    state = "failed" if reason is not None else "executed"
    if not AutomationActionRun.objects.filter(id=record.id, state="running").update(
        state=state, reason=reason or ""
    ):
        logger.warning(
            "Automation %s action %d ended (%s) after it was failed as stalled",
            run.firing.automation_id, run.index, state,
        )  # fmt: skip
        return False
    record.state, record.reason = state, reason or ""
    if reason is not None:
        logger.warning("Automation %s action %d failed: %s", run.firing.automation_id, run.index, reason)
    _emit(run, failed_reason=reason)
    return True


def automation_action_runs_fail_stalled(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Fail the actions, in every workspace (a sweep across tenants, on purpose), still ``running``
    ``AUTOMATION_ACTION_TIMEOUT_SECONDS`` after they were claimed: an outbound call whose process
    died during the call, or whose end could not be recorded. Each is recorded as failed with the
    reason and announced (``prefect.automation.action.failed``), never run again: its row stays,
    so no later delivery of the firing claims it. Returns how many were failed."""
    now = now or timezone.now()
    bound = settings.AUTOMATION_ACTION_TIMEOUT_SECONDS
    stalled = list(
        AutomationActionRun.objects.unscoped()
        .filter(state="running", created__lte=now - dt.timedelta(seconds=bound))
        .order_by("created")
        .values_list("workspace_id", "id")[:limit]
    )
    failed = 0
    for workspace_id, record_id in stalled:
        try:
            with workspace_scope(workspace_id), transaction.atomic():
                failed += _fail_stalled(workspace_id, record_id, bound)
        except Exception:  # noqa: BLE001 - one row's failure must not stop the others
            logger.exception("Stalled automation action %s could not be failed", record_id)
    if failed:
        logger.warning("automation actions failed as stalled", extra={"actions": failed})
    return failed


def _fail_stalled(workspace_id: uuid.UUID, record_id: int, bound: int) -> int:
    record = AutomationActionRun.objects.select_for_update().filter(id=record_id, state="running").first()
    if record is None:
        return 0  # it ended meanwhile, or another sweep failed it
    firing = AutomationFiring.objects.get(id=record.firing_id)
    entries = firing.actions or []
    entry = entries[record.action_index] if record.action_index < len(entries) else {}
    entry = {**entry, "action": entry.get("action") or {"type": record.action_type}}
    run = _Run(firing, record.action_index, entry, _automation_of(firing.automation_id))
    reason = (
        f"The action was still running {bound} seconds after it started (the process running it "
        "stopped, or its end could not be recorded); it is not run again"
    )
    with template_ui_base(_workspace_ui_base(workspace_id)):
        return int(_finish(run, record, reason))


def _run_outbound_once(run: _Run) -> int:
    """A call out of the server is claimed first (its row committed as ``running``), made outside
    any transaction, then recorded: it is made at most once per firing, even if the process dies
    during the call (the row then stays ``running``). Its errors are its failure reasons, never
    retried, as Prefect's webhook and notification actions wrap them in ``ActionFailed``."""
    with transaction.atomic():
        record = _claim(run)
    if record is None:
        return 0
    reason = _act(run, final_attempt=True)
    with transaction.atomic():
        _finish(run, record, reason)
    return 1
