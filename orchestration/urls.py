"""Prefect wire routes, mounted under ``/api/accounts/<account>/workspaces/<workspace>/``."""

from __future__ import annotations

from django.urls import include, path

from orchestration.api import meta

urlpatterns = [
    path("health", meta.HealthApi.as_view()),
    path("admin/version", meta.AdminVersionApi.as_view()),
    path("admin/storage", meta.AdminStorageApi.as_view()),
    path("csrf-token", meta.CsrfTokenApi.as_view()),
    path("", include("orchestration.events.urls")),
]
