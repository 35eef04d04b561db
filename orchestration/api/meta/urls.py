"""Health, hello, ready, version, settings, storage, CSRF-token and collection routes, mounted
under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.meta import views

urlpatterns = [
    path("health", views.HealthApi.as_view()),
    path("hello", views.HelloApi.as_view()),
    path("ready", views.ReadyApi.as_view()),
    path("version", views.VersionApi.as_view()),
    path("admin/version", views.AdminVersionApi.as_view()),
    path("admin/settings", views.AdminSettingsApi.as_view()),
    path("admin/storage", views.AdminStorageApi.as_view()),
    path("csrf-token", views.CsrfTokenApi.as_view()),
    path("collections/views/<str:view>", views.CollectionViewApi.as_view()),
]
