"""Prefect wire routes, mounted under ``/api/accounts/<account>/workspaces/<workspace>/``."""

from __future__ import annotations

from django.urls import include, path

from orchestration.api import artifacts, flow_runs, flows, logs, meta, task_runs, variables

urlpatterns = [
    path("health", meta.HealthApi.as_view()),
    path("admin/version", meta.AdminVersionApi.as_view()),
    path("admin/storage", meta.AdminStorageApi.as_view()),
    path("csrf-token", meta.CsrfTokenApi.as_view()),
    # Flows
    path("flows/", flows.FlowCreateApi.as_view()),
    path("flows/filter", flows.FlowFilterApi.as_view()),
    path("flows/count", flows.FlowCountApi.as_view()),
    path("flows/name/<str:name>", flows.FlowByNameApi.as_view()),
    path("flows/<str:flow_id>", flows.FlowDetailApi.as_view()),
    # Flow runs
    path("flow_runs/", flow_runs.FlowRunCreateApi.as_view()),
    path("flow_runs/filter", flow_runs.FlowRunFilterApi.as_view()),
    path("flow_runs/count", flow_runs.FlowRunCountApi.as_view()),
    path("flow_runs/<str:flow_run_id>/set_state", flow_runs.FlowRunSetStateApi.as_view()),
    path("flow_runs/<str:flow_run_id>/labels", flow_runs.FlowRunLabelsApi.as_view()),
    path("flow_runs/<str:flow_run_id>", flow_runs.FlowRunDetailApi.as_view()),
    # Task runs (created from events)
    path("task_runs/filter", task_runs.TaskRunFilterApi.as_view()),
    path("task_runs/count", task_runs.TaskRunCountApi.as_view()),
    path("task_runs/<str:task_run_id>", task_runs.TaskRunDetailApi.as_view()),
    # Logs
    path("logs/", logs.LogCreateApi.as_view()),
    path("logs/filter", logs.LogFilterApi.as_view()),
    # Artifacts
    path("artifacts/", artifacts.ArtifactCreateApi.as_view()),
    path("artifacts/filter", artifacts.ArtifactFilterApi.as_view()),
    path("artifacts/count", artifacts.ArtifactCountApi.as_view()),
    path("artifacts/latest/filter", artifacts.ArtifactLatestFilterApi.as_view()),
    path("artifacts/latest/count", artifacts.ArtifactLatestCountApi.as_view()),
    path("artifacts/<str:key>/latest", artifacts.ArtifactLatestByKeyApi.as_view()),
    path("artifacts/<str:artifact_id>", artifacts.ArtifactDetailApi.as_view()),
    # Variables
    path("variables/", variables.VariableCreateApi.as_view()),
    path("variables/filter", variables.VariableFilterApi.as_view()),
    path("variables/count", variables.VariableCountApi.as_view()),
    path("variables/name/<str:name>", variables.VariableByNameApi.as_view()),
    path("variables/<str:variable_id>", variables.VariableDetailApi.as_view()),
    path("", include("orchestration.events.urls")),
    path("", include("orchestration.api.routes_work_pools")),
    path("", include("orchestration.api.routes_deployments")),
    path("", include("orchestration.api.routes_concurrency")),
]
