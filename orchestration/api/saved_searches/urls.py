"""Routes for saved searches, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.saved_searches import views

urlpatterns = [
    path("saved_searches/", views.SavedSearchUpsertApi.as_view()),
    path("saved_searches/filter", views.SavedSearchFilterApi.as_view()),
    path("saved_searches/<str:saved_search_id>", views.SavedSearchDetailApi.as_view()),
]
