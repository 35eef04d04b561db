from __future__ import annotations

import re

from rest_framework.response import Response

from core.errors import NotFound
from orchestration.api.base import InvalidBody, PrefectApiView, no_content, parse_id
from orchestration.api.flow_runs.wire import flow_run_to_wire, orchestration_result_to_wire
from orchestration.models import FlowRun
from orchestration.schemas.actions import FlowRunCreate, FlowRunUpdate, SetState
from orchestration.selectors.filters import filter_queryset, filtered_page
from orchestration.services.flow_runs import (
    flow_run_create,
    flow_run_delete,
    flow_run_set_labels,
    flow_run_update,
)
from orchestration.services.orchestration import set_flow_run_state

#: Prefect's client sends ``User-Agent: prefect/<version> (API <api version>)``
#: (``prefect/server/api/dependencies.py``, ``PREFECT_CLIENT_USER_AGENT_PATTERN``).
PREFECT_CLIENT_USER_AGENT = re.compile(r"^prefect/(\d+\.\d+\.\d+(?:[a-z.+0-9]+)?) \(API \S+\)$")
#: A client that does not say which version it is counts as an old one, as in Prefect's server
#: (``core_policy.py``: ``context.client_version or Version("2.0.0")``).
UNKNOWN_CLIENT_VERSION = "2.0.0"


def client_version(request) -> str:
    """The Prefect client's version from the request's ``User-Agent``."""
    match = PREFECT_CLIENT_USER_AGENT.match(request.headers.get("User-Agent") or "")
    return match.group(1) if match else UNKNOWN_CLIENT_VERSION


FLOW_RUN_RELATED = ("flows", "task_runs", "deployments", "work_pools", "work_pool_queues")


def _get_run(flow_run_id: str) -> FlowRun:
    run = FlowRun.objects.select_related("state").filter(id=parse_id(flow_run_id, "Flow run")).first()
    if run is None:
        raise NotFound("Flow run not found")
    return run


class FlowRunCreateApi(PrefectApiView):
    required_scopes = {"POST": "run_flows"}

    def post(self, request):
        data = self.parse(FlowRunCreate)
        run, was_created = flow_run_create(data=data, actor=request.user)
        return Response(flow_run_to_wire(run), status=201 if was_created else 200)


class FlowRunDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_flows", "PATCH": "run_flows", "DELETE": "manage_flows"}

    def get(self, request, flow_run_id: str):
        return Response(flow_run_to_wire(_get_run(flow_run_id)))

    def patch(self, request, flow_run_id: str):
        flow_run_update(flow_run_id=parse_id(flow_run_id, "Flow run"), data=self.parse(FlowRunUpdate))
        return no_content()

    def delete(self, request, flow_run_id: str):
        flow_run_delete(flow_run_id=parse_id(flow_run_id, "Flow run"))
        return no_content()


class FlowRunSetStateApi(PrefectApiView):
    required_scopes = {"POST": "run_flows"}

    def post(self, request, flow_run_id: str):
        data = self.parse(SetState)
        result = set_flow_run_state(
            flow_run_id=parse_id(flow_run_id, "Flow run"),
            state=data.state,
            force=data.force,
            actor=request.user,
            client_version=client_version(request),
        )
        return Response(orchestration_result_to_wire(result), status=201 if result.written else 200)


class FlowRunLabelsApi(PrefectApiView):
    required_scopes = {"PATCH": "run_flows"}

    def patch(self, request, flow_run_id: str):
        labels = self.request.data
        if not isinstance(labels, dict) or not all(isinstance(k, str) for k in labels):
            raise InvalidBody("Labels must be a JSON object.")
        flow_run_set_labels(flow_run_id=parse_id(flow_run_id, "Flow run"), labels=labels)
        return no_content()


class FlowRunFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        runs = filtered_page("flow_runs", self.body(), related=FLOW_RUN_RELATED).select_related("state")
        return Response([flow_run_to_wire(run) for run in runs])


class FlowRunCountApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response(filter_queryset("flow_runs", self.body(), related=FLOW_RUN_RELATED).count())
