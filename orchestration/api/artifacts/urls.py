"""Routes for artifacts, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.artifacts import views

urlpatterns = [
    path("artifacts/", views.ArtifactCreateApi.as_view()),
    path("artifacts/filter", views.ArtifactFilterApi.as_view()),
    path("artifacts/count", views.ArtifactCountApi.as_view()),
    path("artifacts/latest/filter", views.ArtifactLatestFilterApi.as_view()),
    path("artifacts/latest/count", views.ArtifactLatestCountApi.as_view()),
    path("artifacts/<str:key>/latest", views.ArtifactLatestByKeyApi.as_view()),
    path("artifacts/<str:artifact_id>", views.ArtifactDetailApi.as_view()),
]
