from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from urllib.parse import quote

from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.response import Response

from billing.selectors import ensure_new_work_allowed
from core.errors import NotFound
from orchestration.api.base import InvalidBody, PrefectApiView, created, no_content, parse_id
from orchestration.api.flow_runs.wire import (
    bulk_state_result_to_wire,
    dependency_to_wire,
    flow_run_input_to_wire,
    flow_run_to_wire,
    graph_to_wire,
    history_to_wire,
    orchestration_result_to_wire,
)
from orchestration.models import FlowRun
from orchestration.schemas.actions import FlowRunCreate, FlowRunUpdate, SetState
from orchestration.schemas.flow_runs import (
    FlowRunBulkDelete,
    FlowRunBulkSetState,
    FlowRunHistory,
    FlowRunInputCreate,
    FlowRunInputFilter,
    FlowRunPaginate,
    FlowRunResume,
)
from orchestration.selectors.filters import (
    FilterError,
    filter_queryset,
    filtered_page,
    paginated,
    parse_datetime,
)
from orchestration.selectors.flow_runs import (
    flow_run_dependencies,
    flow_run_get,
    flow_run_graph,
    flow_run_history,
    flow_run_input_get,
    flow_run_input_list,
    flow_run_lateness,
    flow_run_log_pages,
)
from orchestration.services.flow_run_bulk import flow_runs_bulk_delete, flow_runs_bulk_set_state
from orchestration.services.flow_run_inputs import (
    flow_run_input_create,
    flow_run_input_delete,
    flow_run_resume,
)
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
        if data.parent_task_run_id is None:
            # A new flow run is new work; a subflow belongs to a run already executing.
            ensure_new_work_allowed(self.account)
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


class FlowRunPaginateApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        body = self.body()
        self.parse(FlowRunPaginate, body)  # Prefect's 422 for a bad page
        page = paginated("flow_runs", body, related=FLOW_RUN_RELATED, select=("state",))
        return Response(page.answer([flow_run_to_wire(run) for run in page.rows]))


class FlowRunHistoryApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        body = self.body()
        data = self.parse(FlowRunHistory, body)
        if data.history_interval_seconds < 1:
            raise InvalidBody("History interval must not be less than 1 second.")
        filters = {**body, "work_pool_queues": body.get("work_queues")}
        runs = filter_queryset("flow_runs", filters, related=FLOW_RUN_RELATED)
        start, end = parse_datetime(data.history_start), parse_datetime(data.history_end)
        intervals = flow_run_history(
            runs=runs, start=start, end=end, interval=dt.timedelta(seconds=data.history_interval_seconds)
        )
        return Response(history_to_wire(intervals))


class FlowRunLatenessApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        runs = filter_queryset("flow_runs", self.body(), related=FLOW_RUN_RELATED)
        lateness = flow_run_lateness(runs=runs)
        # DRF renders None as an empty body; Prefect answers a JSON null.
        return (
            Response(lateness)
            if lateness is not None
            else HttpResponse(b"null", content_type="application/json")
        )


class FlowRunBulkDeleteApi(PrefectApiView):
    required_scopes = {"POST": "manage_flows"}

    def post(self, request):
        data = self.parse(FlowRunBulkDelete)
        deleted = flow_runs_bulk_delete(flow_runs=data.flow_runs, limit=data.limit)
        return Response({"deleted": [str(i) for i in deleted]})


class FlowRunBulkSetStateApi(PrefectApiView):
    required_scopes = {"POST": "run_flows"}

    def post(self, request):
        data = self.parse(FlowRunBulkSetState)
        results = flow_runs_bulk_set_state(
            flow_runs=data.flow_runs,
            state=data.state,
            force=data.force,
            limit=data.limit,
            actor=request.user,
            client_version=client_version(request),
        )
        return Response({"results": [bulk_state_result_to_wire(item) for item in results]})


class FlowRunResumeApi(PrefectApiView):
    required_scopes = {"POST": "run_flows"}

    def post(self, request, flow_run_id: str):
        data = self.parse(FlowRunResume, self.body())
        outcome = flow_run_resume(
            flow_run_id=parse_id(flow_run_id, "Flow run"),
            run_input=data.run_input,
            actor=request.user,
            client_version=client_version(request),
        )
        result = outcome.result
        return Response(orchestration_result_to_wire(result), status=201 if result.written else 200)


class FlowRunGraphApi(PrefectApiView):
    required_scopes = {"GET": "see_flows"}

    def get(self, request, flow_run_id: str):
        items = flow_run_dependencies(flow_run_id=parse_id(flow_run_id, "Flow run"))
        return Response([dependency_to_wire(item) for item in items])


class FlowRunGraphV2Api(PrefectApiView):
    required_scopes = {"GET": "see_flows"}

    def get(self, request, flow_run_id: str):
        since_raw = request.query_params.get("since")
        try:
            since = parse_datetime(since_raw) if since_raw else dt.datetime.min.replace(tzinfo=dt.UTC)
        except FilterError:
            raise InvalidBody("Invalid request received.", extra={"exception_detail": [
                {"type": "datetime_from_date_parsing", "loc": ["query", "since"], "msg": "Input should be a valid datetime"}
            ]}) from None  # fmt: skip
        graph = flow_run_graph(flow_run_id=parse_id(flow_run_id, "Flow run"), since=since)
        return Response(graph_to_wire(graph))


def _log_csv(pages) -> Iterator[bytes]:
    """Prefect's log download, as CSV: the header, then one chunk per page of logs read."""
    data = io.StringIO()
    writer = csv.writer(data)
    writer.writerow(["timestamp", "level", "flow_run_id", "task_run_id", "message"])
    for page in pages:
        for timestamp, level, run_id, task_run_id, message in page:
            writer.writerow([timestamp.astimezone(dt.UTC), level, run_id, task_run_id or "", message])
        yield data.getvalue().encode()
        data.seek(0)
        data.truncate(0)
    if data.tell():
        yield data.getvalue().encode()


class FlowRunLogsDownloadApi(PrefectApiView):
    """Prefect's ``flow_runs/{id}/logs/download``: every log of the run as CSV, streamed as it is
    read a page at a time (memory bounded by a page, however many logs the run has)."""

    required_scopes = {"GET": "see_flows"}

    def get(self, request, flow_run_id: str):
        run = flow_run_get(flow_run_id=parse_id(flow_run_id, "Flow run"))
        pages = flow_run_log_pages(workspace_id=self.workspace.pk, flow_run_id=run.id)
        response = StreamingHttpResponse(_log_csv(pages), content_type="text/csv; charset=utf-8")
        filename = quote(f"{run.name}-logs.csv", safe="")
        response["Content-Disposition"] = (
            f"attachment; filename=\"flow-run-logs.csv\"; filename*=UTF-8''{filename}"
        )
        return response


class FlowRunInputCreateApi(PrefectApiView):
    required_scopes = {"POST": "run_flows"}

    def post(self, request, flow_run_id: str):
        data = self.parse(FlowRunInputCreate, self.body())
        flow_run_input_create(
            flow_run_id=parse_id(flow_run_id, "Flow run"), key=data.key, value=data.value, sender=data.sender
        )
        return created(None)


class FlowRunInputKeyApi(PrefectApiView):
    required_scopes = {"GET": "see_flows", "DELETE": "run_flows"}

    def get(self, request, flow_run_id: str, key: str = "filter"):
        item = flow_run_input_get(flow_run_id=parse_id(flow_run_id, "Flow run input"), key=key)
        if item is None:
            raise NotFound("Flow run input not found")
        return HttpResponse(item.value.encode(), content_type="text/plain; charset=utf-8")

    def delete(self, request, flow_run_id: str, key: str = "filter"):
        flow_run_input_delete(flow_run_id=parse_id(flow_run_id, "Flow run input"), key=key)
        return no_content()


class FlowRunInputFilterApi(FlowRunInputKeyApi):
    """``POST input/filter``; a GET or DELETE of ``input/filter`` is the input keyed ``filter``, as
    in Prefect's router."""

    required_scopes = {"POST": "see_flows", "GET": "see_flows", "DELETE": "run_flows"}

    def post(self, request, flow_run_id: str):
        data = self.parse(FlowRunInputFilter, self.body())
        items = flow_run_input_list(
            flow_run_id=parse_id(flow_run_id, "Flow run"),
            prefix=data.prefix,
            limit=data.limit,
            exclude_keys=data.exclude_keys,
        )
        return Response([flow_run_input_to_wire(item) for item in items])
