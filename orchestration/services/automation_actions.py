"""Running a firing's actions (Prefect's ``server/events/actions.py``), each through the service the
API uses, inside the automation's workspace.

An action runs once per firing: its ``AutomationActionRun`` row, unique per (firing, action index),
is written in the transaction that runs it, so a second runner of the same firing waits for the
first and then skips it. Each action emits ``prefect.automation.action.triggered`` and then
``…action.executed`` or ``…action.failed`` with the reason, as Prefect's actions do.

Runs here: ``do-nothing``, ``run-deployment`` (parameters rendered from the triggering event in the
one Jinja sandbox), ``pause-deployment``/``resume-deployment``, ``cancel-flow-run``,
``change-flow-run-state`` and ``suspend-flow-run`` (through ``set_flow_run_state``),
``resume-flow-run``, ``delete-flow-run``, ``pause-``/``resume-work-pool``, ``pause-``/``resume-work-queue``,
``pause-automation``/``resume-automation``, and ``call-webhook``/``send-notification``
(``services.notifications``, through ``core.outbound``). Any other action type fails with the reason
that it is not supported yet. An action that fails with a reason (``ActionFailed``) is not retried;
one that raises anything else rolls back and raises ``ActionsToRetry`` for the task to retry.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import uuid
from contextlib import nullcontext
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import AppError, NotFound
from orchestration.events.services import events_record_on_commit
from orchestration.models import (
    Automation,
    AutomationActionRun,
    AutomationFiring,
    Deployment,
    Flow,
    FlowRun,
    Variable,
    WorkPool,
    WorkQueue,
)
from orchestration.models.states import StateType
from orchestration.schemas import hydration
from orchestration.schemas.automations import AutomationPartialUpdate, upgrade_v1_templates
from orchestration.schemas.deployments import DeploymentFlowRunCreate
from orchestration.schemas.states import StateCreate, StateDetails
from orchestration.schemas.templates import TemplateRenderError, template_render
from orchestration.services.automations import automation_patch
from orchestration.services.deployments import deployment_flow_run_create, deployment_set_paused
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
        self, firing: AutomationFiring, index: int, entry: dict[str, Any], automation: dict[str, str]
    ) -> None:
        self.firing = firing
        self.automation = automation
        self.index = index
        self.action = entry["action"]
        # `actions_on_trigger` carry the triggered event as theirs; `actions` the firing's.
        self.event = entry.get("event") or firing.triggering_event or None
        self.related: list[dict[str, str]] = []
        self.details: dict[str, Any] = {}

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
        context = {
            "automation": {"id": str(self.firing.automation_id),
                           "name": self.automation.get("prefect.resource.name", "")},
            "event": self.event,
            "labels": self.firing.triggering_labels,
            "firing": {"id": str(self.firing.id), "triggered": self.firing.triggered.isoformat()},
        }  # fmt: skip
        context.update(_native_objects(self.event))
        return context

    def render(self, *templates: str) -> list[str]:
        """Prefect's ``JinjaTemplateAction._render``, in the one sandbox."""
        context = self.template_context()
        try:
            return [template_render(template, context) for template in templates]
        except TemplateRenderError as error:
            self.details["template_error"] = str(error)
            raise ActionFailed(f"Template rendering failed: {error}") from error


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


def _native_objects(event: dict[str, Any] | None) -> dict[str, Any]:
    """Prefect's ``_relevant_native_objects``: the flow run, flow, deployment, work queue and work
    pool the event names, as plain values for templates (``{{ flow_run.name }}``)."""
    objects: dict[str, Any] = {}
    if not event:
        return objects
    if ids := _resource_ids(event, "prefect.flow-run"):
        run = FlowRun.objects.select_related("state").filter(id=ids[0]).first()
        if run is not None:
            state = run.state
            objects["flow_run"] = {
                "id": str(run.id), "name": run.name, "parameters": run.parameters, "tags": run.tags,
                "deployment_id": str(run.deployment_id) if run.deployment_id else None,
                "flow_id": str(run.flow_id),
                "state": {"type": state.type, "name": state.name, "message": state.message} if state else None,
            }  # fmt: skip
    for kind, model, key in (
        ("prefect.flow", Flow, "flow"),
        ("prefect.deployment", Deployment, "deployment"),
        ("prefect.work-queue", WorkQueue, "work_queue"),
        ("prefect.work-pool", WorkPool, "work_pool"),
    ):
        if ids := _resource_ids(event, kind):
            row = model.objects.filter(id=ids[0]).first()
            if row is not None:
                objects[key] = {"id": str(row.id), "name": row.name}
    return objects


def _render_parameters(run: _Run) -> dict[str, Any]:
    parameters = copy.deepcopy(run.action.get("parameters") or {})
    upgrade_v1_templates(parameters)
    context = hydration.HydrationContext(
        workspace_variables=dict(Variable.objects.values_list("name", "value")),
        render_workspace_variables=True,
        render_jinja=True,
        jinja_context=run.template_context(),
    )
    rendered = hydration.hydrate(parameters, context)
    error = hydration.first_error(rendered)
    if error is not None:
        raise ActionFailed(f"Unable to create flow run from deployment: {error.message}")
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
        parameters=_render_parameters(run),
        idempotency_key=f"automation {run.firing.automation_id}, action {run.index}, invocation {run.firing.id}",
        job_variables=run.action.get("job_variables"),
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


def _emit(run: _Run, *, failed_reason: str | None) -> None:
    firing = run.firing
    resource = {"prefect.resource.id": f"prefect.automation.{firing.automation_id}", **run.automation}
    details = {"action_index": run.index, "action_type": run.action.get("type"), "invocation": str(firing.id)}
    related = [*run.related, {"prefect.resource.id": f"prefect.event.{firing.triggered_event_id}",
                              "prefect.resource.role": "automation-triggered-event"}]  # fmt: skip
    if run.event:
        related.append({"prefect.resource.id": f"prefect.event.{run.event['id']}",
                        "prefect.resource.role": "triggering-event"})  # fmt: skip
    triggered_id = uuid.uuid4()
    outcome = "failed" if failed_reason is not None else "executed"
    payload = {**details, **({"reason": failed_reason} if failed_reason is not None else {}), **run.details}
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


def _automation_resource(automation_id: uuid.UUID) -> dict[str, str]:
    """The labels Prefect's action events give the automation: its name, trigger type and (for
    an event trigger) posture."""
    row = Automation.objects.filter(id=automation_id).values("name", "trigger").first()
    if row is None:
        return {}
    trigger = row["trigger"] or {}
    labels = {"prefect.resource.name": row["name"], "prefect.trigger-type": str(trigger.get("type", "event"))}
    if trigger.get("type", "event") == "event":
        labels["prefect.posture"] = str(trigger.get("posture", "Reactive"))
    return labels


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
        automation = _automation_resource(firing.automation_id)
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


def _finish(run: _Run, record: AutomationActionRun, reason: str | None) -> None:
    record.state = "failed" if reason is not None else "executed"
    record.reason = reason or ""
    record.save(update_fields=["state", "reason"])
    if reason is not None:
        logger.warning("Automation %s action %d failed: %s", run.firing.automation_id, run.index, reason)
    _emit(run, failed_reason=reason)


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
