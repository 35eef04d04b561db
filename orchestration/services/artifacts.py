from __future__ import annotations

import uuid

from django.utils import timezone

from core.errors import NotFound
from orchestration.models import Artifact
from orchestration.schemas.actions import ArtifactCreate, ArtifactUpdate
from tenants.scoping import current_workspace_id


def artifact_create(*, data: ArtifactCreate) -> Artifact:
    return Artifact.objects.create(
        workspace_id=current_workspace_id(),
        key=data.key,
        type=data.type,
        description=data.description,
        data=data.data,
        metadata=data.metadata_,
        flow_run_id=data.flow_run_id,
        task_run_id=data.task_run_id,
    )


def artifact_update(*, artifact_id: uuid.UUID, data: ArtifactUpdate) -> None:
    changes = data.model_dump(exclude_unset=True)
    if "metadata_" in changes:
        changes["metadata"] = changes.pop("metadata_")
    artifacts = Artifact.objects.filter(id=artifact_id)
    if not artifacts.exists():
        raise NotFound("Artifact not found.")
    if changes:
        artifacts.update(**changes, updated=timezone.now())


def artifact_delete(*, artifact_id: uuid.UUID) -> None:
    deleted, _ = Artifact.objects.filter(id=artifact_id).delete()
    if not deleted:
        raise NotFound("Artifact not found.")
