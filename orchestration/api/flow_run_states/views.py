from __future__ import annotations

from rest_framework.response import Response

from core.errors import NotFound
from core.ids import as_uuid
from orchestration.api.base import InvalidBody, PrefectApiView, parse_id
from orchestration.schemas.states import state_to_wire
from orchestration.selectors.flow_runs import flow_run_state_get, flow_run_state_list


class FlowRunStateListApi(PrefectApiView):
    required_scopes = {"GET": "see_flows"}

    def get(self, request):
        raw = request.query_params.get("flow_run_id")
        flow_run_id = as_uuid(raw) if raw is not None else None
        if flow_run_id is None:
            # FastAPI's answer to a missing or malformed required query parameter.
            raise InvalidBody(
                "Invalid request received.",
                extra={"exception_detail": [{"type": "missing" if raw is None else "uuid_parsing",
                                             "loc": ["query", "flow_run_id"],
                                             "msg": "Field required" if raw is None else "Input should be a valid UUID"}]},
            )  # fmt: skip
        return Response([state_to_wire(state) for state in flow_run_state_list(flow_run_id=flow_run_id)])


class FlowRunStateDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_flows"}

    def get(self, request, state_id: str):
        try:
            state = flow_run_state_get(state_id=parse_id(state_id, "Flow run state"))
        except NotFound:
            raise NotFound("Flow run state not found") from None
        return Response(state_to_wire(state))
