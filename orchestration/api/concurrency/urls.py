"""Routes for concurrency, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api.concurrency import views

V2 = "v2/concurrency_limits/"

urlpatterns = [
    # Global limits (v2); the fixed paths come before ``<id_or_name>``.
    path(V2, views.ConcurrencyLimitV2CreateApi.as_view()),
    path(f"{V2}filter", views.ConcurrencyLimitV2FilterApi.as_view()),
    path(f"{V2}increment", views.ConcurrencyLimitV2IncrementApi.as_view()),
    path(f"{V2}increment-with-lease", views.ConcurrencyLimitV2IncrementWithLeaseApi.as_view()),
    path(f"{V2}decrement", views.ConcurrencyLimitV2DecrementApi.as_view()),
    path(f"{V2}decrement-with-lease", views.ConcurrencyLimitV2DecrementWithLeaseApi.as_view()),
    path(f"{V2}leases/<str:lease_id>/renew", views.ConcurrencyLeaseRenewApi.as_view()),
    path(f"{V2}<str:id_or_name>", views.ConcurrencyLimitV2DetailApi.as_view()),
    # Tag limits of task runs (v1)
    path("concurrency_limits/", views.TagLimitCreateApi.as_view()),
    path("concurrency_limits/filter", views.TagLimitFilterApi.as_view()),
    path("concurrency_limits/increment", views.TagSlotsIncrementApi.as_view()),
    path("concurrency_limits/decrement", views.TagSlotsDecrementApi.as_view()),
    path("concurrency_limits/tag/<str:tag>/reset", views.TagLimitResetApi.as_view()),
    path("concurrency_limits/tag/<str:tag>", views.TagLimitByTagApi.as_view()),
    path("concurrency_limits/<str:limit_id>", views.TagLimitDetailApi.as_view()),
]
