"""Routes for flow runs, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.flow_runs import views

urlpatterns = [
    path("flow_runs/", views.FlowRunCreateApi.as_view()),
    path("flow_runs/filter", views.FlowRunFilterApi.as_view()),
    path("flow_runs/count", views.FlowRunCountApi.as_view()),
    path("flow_runs/paginate", views.FlowRunPaginateApi.as_view()),
    path("flow_runs/history", views.FlowRunHistoryApi.as_view()),
    path("flow_runs/lateness", views.FlowRunLatenessApi.as_view()),
    path("flow_runs/bulk_delete", views.FlowRunBulkDeleteApi.as_view()),
    path("flow_runs/bulk_set_state", views.FlowRunBulkSetStateApi.as_view()),
    path("flow_runs/<str:flow_run_id>/resume", views.FlowRunResumeApi.as_view()),
    path("flow_runs/<str:flow_run_id>/graph", views.FlowRunGraphApi.as_view()),
    path("flow_runs/<str:flow_run_id>/graph-v2", views.FlowRunGraphV2Api.as_view()),
    path("flow_runs/<str:flow_run_id>/logs/download", views.FlowRunLogsDownloadApi.as_view()),
    path("flow_runs/<str:flow_run_id>/input", views.FlowRunInputCreateApi.as_view()),
    path("flow_runs/<str:flow_run_id>/input/filter", views.FlowRunInputFilterApi.as_view()),
    path("flow_runs/<str:flow_run_id>/input/<str:key>", views.FlowRunInputKeyApi.as_view()),
    path("flow_runs/<str:flow_run_id>/set_state", views.FlowRunSetStateApi.as_view()),
    path("flow_runs/<str:flow_run_id>/labels", views.FlowRunLabelsApi.as_view()),
    path("flow_runs/<str:flow_run_id>", views.FlowRunDetailApi.as_view()),
]
