"""Reads of saved searches (Prefect's ``read_saved_searches``: by name)."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from core.errors import NotFound
from orchestration.models import SavedSearch
from orchestration.selectors.filters import paging


def saved_search_get(saved_search_id: uuid.UUID) -> SavedSearch:
    search = SavedSearch.objects.filter(id=saved_search_id).first()
    if search is None:
        raise NotFound("Saved search not found")
    return search


def saved_search_list(body: dict) -> QuerySet:
    limit, offset = paging(body)
    return SavedSearch.objects.order_by("name", "id")[offset : offset + limit]
