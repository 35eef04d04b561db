"""Writes of saved searches (Prefect's ``models/saved_searches.py``: a PUT by name creates or
replaces) and of the workspace's default result storage (``models/storage_defaults.py``)."""

from __future__ import annotations

import uuid

from django.db import transaction

from core.errors import NotFound, Unprocessable
from orchestration.models import BlockDocument, ResultStorageDefault, SavedSearch
from orchestration.schemas.saved_searches import ResultStorageUpdate, SavedSearchCreate
from tenants.scoping import current_workspace_id


def saved_search_upsert(*, data: SavedSearchCreate) -> tuple[SavedSearch, bool]:
    """The saved search of that name, created or with its filters replaced; and whether created."""
    filters = [f.model_dump(mode="json") for f in data.filters]
    with transaction.atomic():
        search, created = SavedSearch.objects.select_for_update().get_or_create(
            workspace_id=current_workspace_id(), name=data.name, defaults={"filters": filters}
        )
        if not created:
            search.filters = filters
            search.save(update_fields=["filters", "updated"])
    return search, created


def saved_search_delete(*, saved_search_id: uuid.UUID) -> None:
    deleted, _ = SavedSearch.objects.filter(id=saved_search_id).delete()
    if not deleted:
        raise NotFound("Saved search not found")


def result_storage_set(*, data: ResultStorageUpdate) -> uuid.UUID:
    """Prefect's checks: the block document exists (404) and can write paths (422)."""
    block_id = data.default_result_storage_block_id
    with transaction.atomic():
        document = BlockDocument.objects.select_related("block_schema").filter(id=block_id).first()
        if document is None:
            raise NotFound(f"Block document {block_id} not found.")
        if "write-path" not in (document.block_schema.capabilities or []):
            raise Unprocessable(f"Block document {block_id} cannot be used for result storage.")
        ResultStorageDefault.objects.update_or_create(
            workspace_id=current_workspace_id(), defaults={"block_document": document}
        )
    return block_id


def result_storage_clear() -> None:
    ResultStorageDefault.objects.filter().delete()
