"""Routes for task runs and their states, mounted under the workspace prefix. (The websocket
``task_runs/subscriptions/scheduled`` is in ``config/routing.py``.)"""

from __future__ import annotations

from django.urls import path

from orchestration.api.task_runs import views

urlpatterns = [
    path("task_runs/", views.TaskRunCreateApi.as_view()),
    path("task_runs/filter", views.TaskRunFilterApi.as_view()),
    path("task_runs/count", views.TaskRunCountApi.as_view()),
    path("task_runs/paginate", views.TaskRunPaginateApi.as_view()),
    path("task_runs/history", views.TaskRunHistoryApi.as_view()),
    path("task_runs/<str:task_run_id>/set_state", views.TaskRunSetStateApi.as_view()),
    path("task_runs/<str:task_run_id>", views.TaskRunDetailApi.as_view()),
    path("task_run_states/", views.TaskRunStateListApi.as_view()),
    path("task_run_states/<str:state_id>", views.TaskRunStateDetailApi.as_view()),
    path("task_workers/filter", views.TaskWorkerFilterApi.as_view()),
]
