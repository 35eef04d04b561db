"""Routes for automations and template validation, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.automations import views

urlpatterns = [
    path("automations/", views.AutomationCreateApi.as_view()),
    path("automations/filter", views.AutomationFilterApi.as_view()),
    path("automations/count", views.AutomationCountApi.as_view()),
    path("automations/templates/validate", views.TemplateValidateApi.as_view()),
    path("templates/validate", views.TemplateValidateApi.as_view()),
    path("automations/related-to/<str:resource_id>", views.AutomationRelatedToApi.as_view()),
    path("automations/owned-by/<str:resource_id>", views.AutomationOwnedByApi.as_view()),
    path("automations/<str:automation_id>", views.AutomationDetailApi.as_view()),
]
