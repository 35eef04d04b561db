"""Writes of automations (Prefect's ``api/automations.py`` and ``events/models/automations.py``).

An action names objects only of this workspace: a deployment, work pool, work queue, block
document or automation it selects must exist here (404 otherwise, as Prefect answers for a
run-deployment action's unknown deployment), so an automation can never reach into another
workspace. The related resources (deployments run by ``actions``, the owner) are kept in step with
every write, as Prefect's ``_sync_automation_related_resources`` keeps them.

An automation does only what its author may do: creating one, replacing it (``PUT``) or re-enabling
it (``PATCH`` from disabled to enabled) needs, besides ``manage_automations``, the scope each of its
actions needs (``ACTION_SCOPES``: the scope of the API route that does the same by hand), else 403
naming the missing scope, and nothing is written. A ``resume-automation`` action also needs what
the automation it re-enables needs (for an ``inferred`` one, which may re-enable any automation,
every scope an action can need). Pausing, deleting and the server's own writes (an action that
pauses or resumes an automation) are not checked: they are called without ``caller_scopes``.

Every create, update and delete is an audit record (``automation.created|updated|deleted``, in the
change's transaction) and, as Prefect's server emits them, a ``prefect.automation.created|updated|
deleted`` event carrying the automation (on commit); the automations a resource owns, deleted with
it, are audit records but not events (Prefect emits none for them).
"""

from __future__ import annotations

import copy
import uuid

from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError

from audit import events
from core.errors import Forbidden, NotFound, Unprocessable
from orchestration.events.services import object_event_record_on_commit
from orchestration.models import (
    Automation,
    AutomationBucket,
    AutomationChildFiring,
    AutomationRelatedResource,
    BlockDocument,
    Deployment,
    WorkPool,
    WorkQueue,
)
from orchestration.schemas.automations import (
    Automation as AutomationSchema,
)
from orchestration.schemas.automations import (
    AutomationCore,
    AutomationCreate,
    AutomationPartialUpdate,
    AutomationUpdate,
    RunDeployment,
    automation_document,
    reset_trigger_ids,
)
from orchestration.schemas.parameters import job_variables_check
from orchestration.services import auditing
from tenants.scoping import current_workspace_id

_REFERENCES = (
    ("deployment_id", Deployment, "Deployment not found."),
    ("work_pool_id", WorkPool, "Work pool not found."),
    ("work_queue_id", WorkQueue, "Work queue not found."),
    ("block_document_id", BlockDocument, "Block document not found."),
    ("automation_id", Automation, "Automation not found"),
)


#: The scope each action type needs: that of the API route doing the same by hand (the views'
#: ``required_scopes``; a test holds the two together), so ``manage_automations`` alone cannot do
#: through an automation what its holder could not do through the API.
ACTION_SCOPES: dict[str, str | None] = {
    "do-nothing": None,
    "run-deployment": "run_deployments",  # POST deployments/{id}/create_flow_run
    "pause-deployment": "write_deployments",  # POST deployments/{id}/pause_deployment, PATCH
    "resume-deployment": "write_deployments",
    "cancel-flow-run": "run_flows",  # POST flow_runs/{id}/set_state
    "change-flow-run-state": "run_flows",
    "suspend-flow-run": "run_flows",
    "resume-flow-run": "run_flows",  # POST flow_runs/{id}/resume
    "delete-flow-run": "manage_flows",  # DELETE flow_runs/{id}
    "pause-work-queue": "write_work_queues",  # PATCH work_queues/{id}
    "resume-work-queue": "write_work_queues",
    "pause-work-pool": "write_work_pools",  # PATCH work_pools/{name}
    "resume-work-pool": "write_work_pools",
    "pause-automation": "manage_automations",  # PATCH automations/{id}
    "resume-automation": "manage_automations",
    # The action reads its block with the secrets in clear (block_documents/{id}?include_secrets).
    "send-notification": "see_secret_blocks",
    "call-webhook": "see_secret_blocks",
}
_ACTION_LISTS = ("actions", "actions_on_trigger", "actions_on_resolve")
_EVERY_ACTION_SCOPE = tuple(dict.fromkeys(scope for scope in ACTION_SCOPES.values() if scope))


class AutomationInvalid(Unprocessable):
    """A stored automation a change would make invalid: Prefect's 422 with the pydantic errors."""


def _check_references(data: AutomationCore) -> None:
    """Every object an action selects is one of this workspace's (one query per kind named)."""
    actions = data.all_actions()
    for field, model, message in _REFERENCES:
        wanted = {getattr(a, field) for a in actions if getattr(a, field, None) is not None}
        if wanted and model.objects.filter(id__in=wanted).count() != len(wanted):
            raise NotFound(message)


def _check_caller_may(actions: list, caller_scopes: frozenset[str] | None, *, itself=None) -> None:
    """403 unless ``caller_scopes`` hold every scope ``actions`` (stored dicts or models) need,
    including what the automations a ``resume-automation`` action re-enables need, transitively
    (one query per level; ``itself``, the automation being written, counts with ``actions``).
    ``None``: the server acting on its own, not checked."""
    if caller_scopes is None:
        return
    seen = {itself} if itself is not None else set()
    # (action, the type of this automation's action that brings it in)
    pending = [(a if isinstance(a, dict) else a.model_dump(mode="json"), None) for a in actions]
    while pending:
        targets: set[uuid.UUID] = set()
        for action, via in pending:
            kind = action["type"]
            needs = [ACTION_SCOPES[kind]] if ACTION_SCOPES[kind] else []
            if kind == "resume-automation":
                if action.get("source") == "inferred":
                    needs = list(_EVERY_ACTION_SCOPE)
                elif action.get("automation_id"):
                    targets.add(uuid.UUID(str(action["automation_id"])))
            for scope in needs:
                if scope not in caller_scopes:
                    raise Forbidden(
                        f"Missing the scope {scope!r} in this workspace, which this automation's "
                        f"{via or kind} action needs."
                    )
        targets -= seen
        seen |= targets
        # An unknown target is the references check's 404, later.
        pending = [
            (action, "resume-automation")
            for stored in Automation.objects.filter(id__in=targets).values_list(*_ACTION_LISTS)
            for group in stored
            for action in group or ()
        ]


def _check_job_variables(data: AutomationCore, *, allow_empty: bool) -> None:
    """Prefect's ``validate_job_variables_for_run_deployment_action``: a run-deployment action's job
    variables against its deployment's work pool (required fields enforced)."""
    errors = []
    for action in data.actions:
        if not isinstance(action, RunDeployment) or action.deployment_id is None:
            continue
        if action.job_variables is None or (not allow_empty and action.job_variables == {}):
            continue
        deployment = (
            Deployment.objects.select_related("work_queue__work_pool").filter(id=action.deployment_id).first()
        )
        if deployment is None:
            raise NotFound("Deployment not found.")
        pool = deployment.work_queue.work_pool if deployment.work_queue is not None else None
        if pool is None or not (deployment.job_variables or action.job_variables):
            continue
        try:
            job_variables_check(pool, action.job_variables, ignore_required=False)
        except ValueError as error:
            errors.append(str(error))
    if errors:
        raise Unprocessable(f"Error creating automation: {' '.join(errors)}")


def _sync_related(automation: Automation, data: AutomationCore) -> None:
    AutomationRelatedResource.objects.filter(
        automation=automation,
        resource_id__startswith="prefect.deployment.",
        automation_owned_by_resource=False,
    ).delete()
    deployment_ids = {
        a.deployment_id for a in data.actions if isinstance(a, RunDeployment) and a.source == "selected"
    }
    for deployment_id in sorted(deployment_ids, key=str):
        _relate(automation, f"prefect.deployment.{deployment_id}", owned=False)


def _relate(automation: Automation, resource_id: str, *, owned: bool) -> None:
    related, created = AutomationRelatedResource.objects.get_or_create(
        workspace_id=automation.workspace_id,
        automation=automation,
        resource_id=resource_id,
        defaults={"automation_owned_by_resource": owned},
    )
    if not created and owned and not related.automation_owned_by_resource:
        related.automation_owned_by_resource = True
        related.save(update_fields=["automation_owned_by_resource", "updated"])


#: What an automation's audit records show of it, before and after a change.
_AUDITED = tuple(AutomationCore.model_fields)


def _snapshot(automation: Automation) -> dict:
    return {name: copy.deepcopy(getattr(automation, name)) for name in _AUDITED}


def _emit(automation: Automation, action: str) -> None:
    """Prefect's lifecycle event of an automation (``events/schemas/lifecycle.py``)."""
    object_event_record_on_commit(
        workspace_id=automation.workspace_id,
        event=f"prefect.automation.{action}",
        resource_id=f"prefect.automation.{automation.id}",
        resource_name=automation.name,
        payload=automation_document(automation),
    )


def _saved(automation: Automation, before: dict, actor) -> None:
    """After an update: the audit record of what changed, and Prefect's ``updated`` event."""
    auditing.record_changes(
        events.AUTOMATION_UPDATED, target=automation, actor=actor, before=before, after=_snapshot(automation)
    )
    _emit(automation, "updated")


def automation_create(
    *, data: AutomationCreate, actor=None, caller_scopes: frozenset[str] | None = None
) -> Automation:
    """``caller_scopes``: what the caller may do in the workspace; each action must be one of it."""
    reset_trigger_ids(data.trigger)
    _check_caller_may(data.all_actions(), caller_scopes)
    _check_references(data)
    _check_job_variables(data, allow_empty=False)
    with transaction.atomic():
        automation = Automation.objects.create(workspace_id=current_workspace_id(), **data.stored())
        _sync_related(automation, data)
        if data.owner_resource:
            _relate(automation, data.owner_resource, owned=True)
        auditing.record(
            events.AUTOMATION_CREATED, target=automation, actor=actor, after=_snapshot(automation)
        )
        _emit(automation, "created")
    return automation


def automation_update(
    *,
    automation_id: uuid.UUID,
    data: AutomationUpdate,
    actor=None,
    caller_scopes: frozenset[str] | None = None,
) -> None:
    """PUT: the fields the body sets replace the stored ones (Prefect's ``exclude_unset``); every
    action it leaves must be one ``caller_scopes`` may do."""
    reset_trigger_ids(data.trigger)
    with transaction.atomic():
        automation = Automation.objects.select_for_update().filter(id=automation_id).first()
        if automation is None:
            raise NotFound("Automation not found")
        # What it holds after: the body's action lists, the stored ones the body leaves unset.
        held = [
            action
            for name in _ACTION_LISTS
            for action in (
                getattr(data, name) if name in data.model_fields_set else getattr(automation, name)
            )
            or ()
        ]
        _check_caller_may(held, caller_scopes, itself=automation.id)
        _check_references(data)
        _check_job_variables(data, allow_empty=True)
        before = _snapshot(automation)
        stored = data.stored()
        for name in data.model_fields_set | {"trigger"}:
            if name in stored:
                setattr(automation, name, stored[name])
        automation.save()
        # Its trigger ids are new: the windows of the old ones are gone.
        AutomationBucket.objects.filter(automation=automation).delete()
        AutomationChildFiring.objects.filter(automation=automation).delete()
        _sync_related(automation, data)
        _saved(automation, before, actor)


def automation_patch(
    *,
    automation_id: uuid.UUID,
    data: AutomationPartialUpdate,
    actor=None,
    caller_scopes: frozenset[str] | None = None,
) -> None:
    """PATCH (``enabled``): the automation it leaves must still be valid (a re-enabled automation
    meets the loop checks again, and its actions must be ones ``caller_scopes`` may do)."""
    with transaction.atomic():
        automation = Automation.objects.select_for_update().filter(id=automation_id).first()
        if automation is None:
            raise NotFound("Automation not found")
        changes = data.model_dump(exclude_unset=True)
        if not changes:
            return
        if changes.get("enabled") and not automation.enabled:
            stored = [action for name in _ACTION_LISTS for action in getattr(automation, name) or ()]
            _check_caller_may(stored, caller_scopes, itself=automation.id)
        merged = {name: getattr(automation, name) for name in AutomationCore.model_fields} | changes
        try:
            AutomationSchema.model_validate(merged)
        except ValidationError as error:
            raise AutomationInvalid(
                "Invalid request received.",
                extra={
                    "exception_detail": error.errors(
                        include_url=False, include_context=False, include_input=False
                    )
                },  # fmt: skip
            ) from None
        before = _snapshot(automation)
        for name, value in changes.items():
            setattr(automation, name, value)
        automation.save()
        _saved(automation, before, actor)


def automation_delete(*, automation_id: uuid.UUID, actor=None) -> None:
    with transaction.atomic():
        automation = Automation.objects.select_for_update().filter(id=automation_id).first()
        if automation is None:
            raise NotFound("Automation not found")
        automation.delete()
        automation.id = automation_id  # Django clears the pk of a deleted instance
        auditing.record(
            events.AUTOMATION_DELETED, target=automation, actor=actor, before=_snapshot(automation)
        )
        _emit(automation, "deleted")


def automations_delete_owned_by(*, resource_id: str, actor=None) -> list[uuid.UUID]:
    """Automations the resource owns, created before now (Prefect's ``owned-by`` route)."""
    with transaction.atomic():
        owned = list(
            Automation.objects.select_for_update(of=("self",)).filter(
                related_resources__resource_id=resource_id,
                related_resources__automation_owned_by_resource=True,
                created__lte=timezone.now(),
            )
        )
        ids = [automation.id for automation in owned]
        Automation.objects.filter(id__in=ids).delete()
        for automation in owned:
            auditing.record(
                events.AUTOMATION_DELETED,
                target=automation,
                actor=actor,
                before=_snapshot(automation),
                extra={"owner_resource": resource_id},
            )
    return ids
