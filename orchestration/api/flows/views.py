from __future__ import annotations

from rest_framework.response import Response

from core.errors import NotFound
from orchestration.api.base import PrefectApiView, no_content, parse_id
from orchestration.api.flows.wire import flow_to_wire
from orchestration.models import Flow
from orchestration.schemas.actions import FlowCreate, FlowUpdate
from orchestration.selectors.filters import filter_queryset, filtered_page
from orchestration.services.flows import flow_delete, flow_update, flow_upsert

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
        if not flow_delete(flow_id=parse_id(flow_id, "Flow")):
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
