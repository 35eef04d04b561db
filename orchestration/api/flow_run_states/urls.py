"""Routes for flow-run states (Prefect's ``api/flow_run_states.py``), mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.flow_run_states import views

urlpatterns = [
    path("flow_run_states/", views.FlowRunStateListApi.as_view()),
    path("flow_run_states/<str:state_id>", views.FlowRunStateDetailApi.as_view()),
]
