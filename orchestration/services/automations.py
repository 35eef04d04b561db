"""Writes of automations (Prefect's ``api/automations.py`` and ``events/models/automations.py``).

An action names objects only of this workspace: a deployment, work pool, work queue, block
document or automation it selects must exist here (404 otherwise, as Prefect answers for a
run-deployment action's unknown deployment), so an automation can never reach into another
workspace. The related resources (deployments run by ``actions``, the owner) are kept in step with
every write, as Prefect's ``_sync_automation_related_resources`` keeps them.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError

from core.errors import NotFound, Unprocessable
from orchestration.models import (
    Automation,
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
    reset_trigger_ids,
)
from orchestration.schemas.parameters import job_variables_check
from tenants.scoping import current_workspace_id

_REFERENCES = (
    ("deployment_id", Deployment, "Deployment not found."),
    ("work_pool_id", WorkPool, "Work pool not found."),
    ("work_queue_id", WorkQueue, "Work queue not found."),
    ("block_document_id", BlockDocument, "Block document not found."),
    ("automation_id", Automation, "Automation not found"),
)


class AutomationInvalid(Unprocessable):
    """A stored automation a change would make invalid: Prefect's 422 with the pydantic errors."""


def _check_references(data: AutomationCore) -> None:
    """Every object an action selects is one of this workspace's (one query per kind named)."""
    actions = data.all_actions()
    for field, model, message in _REFERENCES:
        wanted = {getattr(a, field) for a in actions if getattr(a, field, None) is not None}
        if wanted and model.objects.filter(id__in=wanted).count() != len(wanted):
            raise NotFound(message)


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


def automation_create(*, data: AutomationCreate) -> Automation:
    reset_trigger_ids(data.trigger)
    _check_references(data)
    _check_job_variables(data, allow_empty=False)
    with transaction.atomic():
        automation = Automation.objects.create(workspace_id=current_workspace_id(), **data.stored())
        _sync_related(automation, data)
        if data.owner_resource:
            _relate(automation, data.owner_resource, owned=True)
    return automation


def automation_update(*, automation_id: uuid.UUID, data: AutomationUpdate) -> None:
    """PUT: the fields the body sets replace the stored ones (Prefect's ``exclude_unset``)."""
    reset_trigger_ids(data.trigger)
    with transaction.atomic():
        automation = Automation.objects.select_for_update().filter(id=automation_id).first()
        if automation is None:
            raise NotFound("Automation not found")
        _check_references(data)
        _check_job_variables(data, allow_empty=True)
        stored = data.stored()
        for name in data.model_fields_set | {"trigger"}:
            if name in stored:
                setattr(automation, name, stored[name])
        automation.save()
        _sync_related(automation, data)


def automation_patch(*, automation_id: uuid.UUID, data: AutomationPartialUpdate) -> None:
    """PATCH (``enabled``): the automation it leaves must still be valid (a re-enabled automation
    meets the loop checks again)."""
    with transaction.atomic():
        automation = Automation.objects.select_for_update().filter(id=automation_id).first()
        if automation is None:
            raise NotFound("Automation not found")
        changes = data.model_dump(exclude_unset=True)
        if not changes:
            return
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
        for name, value in changes.items():
            setattr(automation, name, value)
        automation.save()


def automation_delete(*, automation_id: uuid.UUID) -> None:
    deleted, _ = Automation.objects.filter(id=automation_id).delete()
    if not deleted:
        raise NotFound("Automation not found")


def automations_delete_owned_by(*, resource_id: str) -> list[uuid.UUID]:
    """Automations the resource owns, created before now (Prefect's ``owned-by`` route)."""
    with transaction.atomic():
        ids = list(
            Automation.objects.filter(
                related_resources__resource_id=resource_id,
                related_resources__automation_owned_by_resource=True,
                created__lte=timezone.now(),
            ).values_list("id", flat=True)
        )
        Automation.objects.filter(id__in=ids).delete()
    return ids
