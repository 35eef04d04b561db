"""Health, version, storage and CSRF-token routes, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.meta import views

urlpatterns = [
    path("health", views.HealthApi.as_view()),
    path("admin/version", views.AdminVersionApi.as_view()),
    path("admin/storage", views.AdminStorageApi.as_view()),
    path("csrf-token", views.CsrfTokenApi.as_view()),
]
