from __future__ import annotations

from typing import Literal

from pydantic import Field
from rest_framework.response import Response

from core.errors import NotFound
from orchestration.api.base import PrefectApiView, no_content, parse_id
from orchestration.api.flows.wire import flow_to_wire
from orchestration.models import Flow
from orchestration.schemas.actions import FlowCreate, FlowUpdate
from orchestration.schemas.base import PrefectModel, iso
from orchestration.schemas.deployments import BulkDelete
from orchestration.selectors.filters import (
    filter_queryset,
    filtered_page,
    ordering,
    paginated,
)
from orchestration.selectors.observed_states import observed_states
from orchestration.services.flows import flow_delete, flow_update, flow_upsert, flows_bulk_delete

FLOW_RELATED = ("flow_runs", "task_runs", "deployments", "work_pools")


class FlowCreateApi(PrefectApiView):
    required_scopes = {"POST": "run_flows"}

    def post(self, request):
        data = self.parse(FlowCreate)
        flow, was_created = flow_upsert(name=data.name, tags=data.tags, labels=data.labels)
        return Response(flow_to_wire(flow), status=201 if was_created else 200)


class FlowDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_flows", "PATCH": "manage_flows", "DELETE": "manage_flows"}

    def _flow(self, flow_id: str) -> Flow:
        flow = Flow.objects.filter(id=parse_id(flow_id, "Flow")).first()
        if flow is None:
            raise NotFound("Flow not found")
        return flow

    def get(self, request, flow_id: str):
        return Response(flow_to_wire(self._flow(flow_id)))

    def patch(self, request, flow_id: str):
        data = self.parse(FlowUpdate)
        flow_update(flow=self._flow(flow_id), tags=data.tags)
        return no_content()

    def delete(self, request, flow_id: str):
        if not flow_delete(flow_id=parse_id(flow_id, "Flow"), actor=request.user):
            raise NotFound("Flow not found")
        return no_content()


class FlowByNameApi(PrefectApiView):
    required_scopes = {"GET": "see_flows"}

    def get(self, request, name: str):
        flow = Flow.objects.filter(name=name).first()
        if flow is None:
            raise NotFound("Flow not found")
        return Response(flow_to_wire(flow))


class FlowFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response(
            [flow_to_wire(flow) for flow in filtered_page("flows", self.body(), related=FLOW_RELATED)]
        )


class FlowCountApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response(filter_queryset("flows", self.body(), related=FLOW_RELATED).count())


class FlowPaginateApi(PrefectApiView):
    """Prefect's ``flows/paginate``: a page of the flows the filters match (by name unless
    ``sort`` says otherwise), with the total ``count`` and number of ``pages``."""

    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        page = paginated("flows", self.body(), related=FLOW_RELATED)
        return Response(page.answer([flow_to_wire(flow) for flow in page.rows]))


class FlowBulkDeleteApi(PrefectApiView):
    """Prefect's ``flows/bulk_delete``: the flows the ``flows`` filter matches (at most ``limit``,
    50 by default, by name), each with its deployments and runs."""

    required_scopes = {"POST": "manage_flows"}

    def post(self, request):
        body = self.body()
        data = self.parse(BulkDelete, body)
        rows = filter_queryset("flows", {"flows": body.get("flows")})
        ids = list(rows.order_by(*ordering("flows", None)).values_list("id", flat=True)[: data.limit])
        deleted = flows_bulk_delete(flow_ids=ids, actor=request.user)
        return Response({"deleted": [str(flow_id) for flow_id in deleted]})


class ObservedStatesQuery(PrefectModel):
    query: str | None = Field(default=None, max_length=100)
    order_by: Literal["NAME_ASC", "LAST_SEEN_DESC"] = "LAST_SEEN_DESC"
    limit: int = Field(default=200, ge=1, le=200)


class ObservedStatesApi(PrefectApiView):
    """Prefect's ``GET observed-states``: the exact state types and names the workspace's flow and
    task runs have been in (query parameters ``query``, ``order_by``, ``limit``)."""

    required_scopes = {"GET": "see_flows"}

    def get(self, request):
        data = self.parse(ObservedStatesQuery, request.query_params.dict())
        rows = observed_states(query=data.query, order_by=data.order_by, limit=data.limit)
        return Response(
            [
                {**row, "first_seen": iso(row["first_seen"]), "last_seen": iso(row["last_seen"])}
                for row in rows
            ]
        )
