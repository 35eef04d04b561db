"""Prefect's UI routes (``api/ui/flows.py``, ``flow_runs.py``, ``task_runs.py``, ``schemas.py``):
the same answers as Prefect's server for the same data, each from one aggregate query or a few."""

from __future__ import annotations

import uuid

from django.utils import timezone
from pydantic import Field
from rest_framework.response import Response

from core.errors import NotFound, Unprocessable
from orchestration.api.base import PrefectApiView, parse_id
from orchestration.api.flow_runs.wire import run_times
from orchestration.api.task_runs.wire import task_run_to_wire
from orchestration.schemas.base import PrefectModel, iso
from orchestration.schemas.hydration import HydrationContext, hydrate
from orchestration.schemas.schema_values import (
    CircularSchemaRefError,
    SchemaValuesError,
    error_object,
    preprocess_schema,
    schema_check,
    schema_errors,
    variable_names,
)
from orchestration.selectors.ui import (
    dashboard_task_run_counts,
    deployment_counts_by_flow,
    flow_run_history,
    next_runs_by_flow,
    task_run_counts_by_flow_run,
    task_run_counts_by_state,
    task_run_with_flow_run_name,
    variables_named,
)


class FlowIds(PrefectModel):
    flow_ids: list[uuid.UUID] = Field(max_length=200)


class FlowRunIds(PrefectModel):
    flow_run_ids: list[uuid.UUID] = Field(max_length=200)


class SchemaValues(PrefectModel):
    schema_: dict = Field(alias="schema")
    values: dict


class FlowRunHistoryApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        now = timezone.now()
        out = []
        for run in flow_run_history(self.body()):
            duration, lateness = run_times(run, now)
            out.append({"id": str(run.id), "state_type": run.state_type,
                        "timestamp": iso(run.start_time or run.expected_start_time),
                        "duration": duration, "lateness": lateness})  # fmt: skip
        return Response(out)


class FlowRunCountTaskRunsApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        ids = self.parse(FlowRunIds).flow_run_ids
        counts = task_run_counts_by_flow_run(ids)
        return Response({str(i): counts.get(i, 0) for i in ids})


class FlowCountDeploymentsApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        ids = self.parse(FlowIds).flow_ids
        counts = deployment_counts_by_flow(ids)
        return Response({str(i): counts.get(i, 0) for i in ids})


class FlowNextRunsApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        ids = self.parse(FlowIds).flow_ids
        runs = next_runs_by_flow(ids)
        return Response({str(i): _simple_next_run(runs.get(i)) for i in ids})


def _simple_next_run(run) -> dict | None:
    if run is None:
        return None
    return {"id": str(run.id), "flow_id": str(run.flow_id), "name": run.name, "state_name": run.state_name,
            "state_type": run.state_type, "next_scheduled_start_time": iso(run.next_scheduled_start_time)}  # fmt: skip


class TaskRunCountApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response(task_run_counts_by_state(self.body()))


class TaskRunDashboardCountsApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response(dashboard_task_run_counts(self.body(), now=timezone.now()))


class UITaskRunDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_flows"}

    def get(self, request, task_run_id: str):
        found = task_run_with_flow_run_name(parse_id(task_run_id, "Task"))
        if found is None:
            raise NotFound("Task not found")
        run, flow_run_name = found
        return Response({**task_run_to_wire(run), "flow_run_name": flow_run_name})


class SchemaValidateApi(PrefectApiView):
    """Values against a schema, workspace variables filled in: Prefect's error object. Reading
    the variables it names is why it needs ``see_variables``."""

    required_scopes = {"POST": "see_variables"}

    def post(self, request):
        data = self.parse(SchemaValues)
        schema = preprocess_schema(data.schema_)
        try:
            schema_check(schema)
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        context = HydrationContext(
            workspace_variables=variables_named(variable_names(data.values)), render_workspace_variables=True
        )
        try:
            errors = schema_errors(hydrate(data.values, context), schema)
        except CircularSchemaRefError:
            raise Unprocessable(
                "Invalid schema: Unable to validate schema with circular references."
            ) from None
        except SchemaValuesError as exc:
            raise Unprocessable(f"Invalid schema: {exc}") from None
        return Response(error_object(errors))
