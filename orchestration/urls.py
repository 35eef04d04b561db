"""Prefect wire routes, mounted under ``/api/accounts/<account>/workspaces/<workspace>/``: each
resource's routes live in its folder of ``orchestration.api`` (the events routes in
``orchestration.events``)."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("orchestration.api.meta.urls")),
    path("", include("orchestration.api.flows.urls")),
    path("", include("orchestration.api.flow_runs.urls")),
    path("", include("orchestration.api.flow_run_states.urls")),
    path("", include("orchestration.api.task_runs.urls")),
    path("", include("orchestration.api.logs.urls")),
    path("", include("orchestration.api.artifacts.urls")),
    path("", include("orchestration.api.variables.urls")),
    path("", include("orchestration.api.blocks.urls")),
    path("", include("orchestration.events.urls")),
    path("", include("orchestration.api.work_pools.urls")),
    path("", include("orchestration.api.automations.urls")),
    path("", include("orchestration.api.webhooks.urls")),
    path("", include("orchestration.api.deployments.urls")),
    path("", include("orchestration.api.concurrency.urls")),
    path("", include("orchestration.api.saved_searches.urls")),
    path("", include("orchestration.api.ui.urls")),
]
