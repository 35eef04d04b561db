"""Routes for task runs (created from events), mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.task_runs import views

urlpatterns = [
    path("task_runs/filter", views.TaskRunFilterApi.as_view()),
    path("task_runs/count", views.TaskRunCountApi.as_view()),
    path("task_runs/<str:task_run_id>", views.TaskRunDetailApi.as_view()),
]
