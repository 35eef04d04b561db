"""Prefect's ``/saved_searches`` routes (the UI's named filters)."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

from orchestration.api.base import PrefectApiView, no_content, parse_id
from orchestration.schemas.base import iso
from orchestration.schemas.saved_searches import SavedSearchCreate
from orchestration.selectors.saved_searches import saved_search_get, saved_search_list
from orchestration.services.saved_searches import saved_search_delete, saved_search_upsert


def saved_search_to_wire(search) -> dict[str, Any]:
    return {
        "id": str(search.id),
        "created": iso(search.created),
        "updated": iso(search.updated),
        "name": search.name,
        "filters": search.filters or [],
    }


class SavedSearchUpsertApi(PrefectApiView):
    required_scopes = {"PUT": "manage_saved_search"}

    def put(self, request):
        search, created = saved_search_upsert(data=self.parse(SavedSearchCreate))
        return Response(saved_search_to_wire(search), status=201 if created else 200)


class SavedSearchDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_flows", "DELETE": "manage_saved_search"}

    def get(self, request, saved_search_id: str):
        return Response(saved_search_to_wire(saved_search_get(parse_id(saved_search_id, "Saved search"))))

    def delete(self, request, saved_search_id: str):
        saved_search_delete(saved_search_id=parse_id(saved_search_id, "Saved search"))
        return no_content()


class SavedSearchFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response([saved_search_to_wire(s) for s in saved_search_list(self.body())])
