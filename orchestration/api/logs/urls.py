"""Routes for logs, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.logs import views

urlpatterns = [
    path("logs/", views.LogCreateApi.as_view()),
    path("logs/filter", views.LogFilterApi.as_view()),
]
