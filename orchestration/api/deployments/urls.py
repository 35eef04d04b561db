"""Routes for deployments, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.deployments import views

urlpatterns = [
    path("deployments/", views.DeploymentCreateApi.as_view()),
    path("deployments/filter", views.DeploymentFilterApi.as_view()),
    path("deployments/count", views.DeploymentCountApi.as_view()),
    path("deployments/paginate", views.DeploymentPaginateApi.as_view()),
    path("deployments/bulk_delete", views.DeploymentBulkDeleteApi.as_view()),
    path("deployments/get_scheduled_flow_runs", views.DeploymentScheduledFlowRunsApi.as_view()),
    path(
        "deployments/name/<str:flow_name>/<path:deployment_name>",
        views.DeploymentByNameApi.as_view(),
    ),
    path("deployments/<str:deployment_id>/create_flow_run", views.DeploymentCreateFlowRunApi.as_view()),
    path(
        "deployments/<str:deployment_id>/create_flow_run/bulk",
        views.DeploymentBulkCreateFlowRunApi.as_view(),
    ),
    path("deployments/<str:deployment_id>/schedule", views.DeploymentScheduleRunsApi.as_view()),
    path("deployments/<str:deployment_id>/work_queue_check", views.DeploymentWorkQueueCheckApi.as_view()),
    path("deployments/<str:deployment_id>/pause_deployment", views.DeploymentPauseApi.as_view()),
    path("deployments/<str:deployment_id>/resume_deployment", views.DeploymentResumeApi.as_view()),
    path("deployments/<str:deployment_id>/schedules", views.DeploymentSchedulesApi.as_view()),
    path(
        "deployments/<str:deployment_id>/schedules/<str:schedule_id>",
        views.DeploymentScheduleDetailApi.as_view(),
    ),
    path("deployments/<str:deployment_id>", views.DeploymentDetailApi.as_view()),
]
