"""Routes for flow runs, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.flow_runs import views

urlpatterns = [
    path("flow_runs/", views.FlowRunCreateApi.as_view()),
    path("flow_runs/filter", views.FlowRunFilterApi.as_view()),
    path("flow_runs/count", views.FlowRunCountApi.as_view()),
    path("flow_runs/<str:flow_run_id>/set_state", views.FlowRunSetStateApi.as_view()),
    path("flow_runs/<str:flow_run_id>/labels", views.FlowRunLabelsApi.as_view()),
    path("flow_runs/<str:flow_run_id>", views.FlowRunDetailApi.as_view()),
]
