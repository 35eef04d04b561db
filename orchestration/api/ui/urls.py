"""Prefect's UI routes, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.ui import views

urlpatterns = [
    path("ui/flows/count-deployments", views.FlowCountDeploymentsApi.as_view()),
    path("ui/flows/next-runs", views.FlowNextRunsApi.as_view()),
    path("ui/flow_runs/history", views.FlowRunHistoryApi.as_view()),
    path("ui/flow_runs/count-task-runs", views.FlowRunCountTaskRunsApi.as_view()),
    path("ui/schemas/validate", views.SchemaValidateApi.as_view()),
    path("ui/task_runs/count", views.TaskRunCountApi.as_view()),
    path("ui/task_runs/dashboard/counts", views.TaskRunDashboardCountsApi.as_view()),
    path("ui/task_runs/<str:task_run_id>", views.UITaskRunDetailApi.as_view()),
]
