"""Routes for deployments, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api import deployments

urlpatterns = [
    path("deployments/", deployments.DeploymentCreateApi.as_view()),
    path("deployments/filter", deployments.DeploymentFilterApi.as_view()),
    path("deployments/count", deployments.DeploymentCountApi.as_view()),
    path("deployments/paginate", deployments.DeploymentPaginateApi.as_view()),
    path("deployments/get_scheduled_flow_runs", deployments.DeploymentScheduledFlowRunsApi.as_view()),
    path(
        "deployments/name/<str:flow_name>/<path:deployment_name>",
        deployments.DeploymentByNameApi.as_view(),
    ),
    path("deployments/<str:deployment_id>/create_flow_run", deployments.DeploymentCreateFlowRunApi.as_view()),
    path("deployments/<str:deployment_id>/pause_deployment", deployments.DeploymentPauseApi.as_view()),
    path("deployments/<str:deployment_id>/resume_deployment", deployments.DeploymentResumeApi.as_view()),
    path("deployments/<str:deployment_id>/schedules", deployments.DeploymentSchedulesApi.as_view()),
    path(
        "deployments/<str:deployment_id>/schedules/<str:schedule_id>",
        deployments.DeploymentScheduleDetailApi.as_view(),
    ),
    path("deployments/<str:deployment_id>", deployments.DeploymentDetailApi.as_view()),
    path("automations/owned-by/<path:resource_id>", deployments.AutomationsOwnedByDeleteApi.as_view()),
]
