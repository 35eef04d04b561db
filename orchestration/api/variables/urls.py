"""Routes for variables, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.variables import views

urlpatterns = [
    path("variables/", views.VariableCreateApi.as_view()),
    path("variables/filter", views.VariableFilterApi.as_view()),
    path("variables/count", views.VariableCountApi.as_view()),
    path("variables/name/<str:name>", views.VariableByNameApi.as_view()),
    path("variables/<str:variable_id>", views.VariableDetailApi.as_view()),
]
