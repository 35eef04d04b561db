"""Routes of incoming webhooks, mounted under the workspace prefix (the receiver, ``/hooks/<slug>``,
is at the site root, in ``config.urls``)."""

from __future__ import annotations

from django.urls import path

from orchestration.api.webhooks import views

urlpatterns = [
    path("webhooks/", views.WebhookCreateApi.as_view()),
    path("webhooks/filter", views.WebhookFilterApi.as_view()),
    path("webhooks/<str:webhook_id>", views.WebhookDetailApi.as_view()),
    path("webhooks/<str:webhook_id>/rotate", views.WebhookRotateApi.as_view()),
]
