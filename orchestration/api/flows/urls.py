"""Routes for flows, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.flows import views

urlpatterns = [
    path("flows/", views.FlowCreateApi.as_view()),
    path("flows/filter", views.FlowFilterApi.as_view()),
    path("flows/count", views.FlowCountApi.as_view()),
    path("flows/paginate", views.FlowPaginateApi.as_view()),
    path("flows/bulk_delete", views.FlowBulkDeleteApi.as_view()),
    path("flows/name/<str:name>", views.FlowByNameApi.as_view()),
    path("flows/<str:flow_id>", views.FlowDetailApi.as_view()),
    # Prefect serves it at ``/observed-states`` (no trailing slash): discovery over run histories.
    path("observed-states", views.ObservedStatesApi.as_view()),
]
