"""Routes for concurrency, mounted under the workspace prefix."""

from __future__ import annotations

from django.urls import path

from orchestration.api import concurrency

V2 = "v2/concurrency_limits/"

urlpatterns = [
    # Global limits (v2); the fixed paths come before ``<id_or_name>``.
    path(V2, concurrency.ConcurrencyLimitV2CreateApi.as_view()),
    path(f"{V2}filter", concurrency.ConcurrencyLimitV2FilterApi.as_view()),
    path(f"{V2}increment", concurrency.ConcurrencyLimitV2IncrementApi.as_view()),
    path(f"{V2}increment-with-lease", concurrency.ConcurrencyLimitV2IncrementWithLeaseApi.as_view()),
    path(f"{V2}decrement", concurrency.ConcurrencyLimitV2DecrementApi.as_view()),
    path(f"{V2}decrement-with-lease", concurrency.ConcurrencyLimitV2DecrementWithLeaseApi.as_view()),
    path(f"{V2}leases/<str:lease_id>/renew", concurrency.ConcurrencyLeaseRenewApi.as_view()),
    path(f"{V2}<str:id_or_name>", concurrency.ConcurrencyLimitV2DetailApi.as_view()),
    # Tag limits of task runs (v1)
    path("concurrency_limits/", concurrency.TagLimitCreateApi.as_view()),
    path("concurrency_limits/filter", concurrency.TagLimitFilterApi.as_view()),
    path("concurrency_limits/increment", concurrency.TagSlotsIncrementApi.as_view()),
    path("concurrency_limits/decrement", concurrency.TagSlotsDecrementApi.as_view()),
    path("concurrency_limits/tag/<str:tag>/reset", concurrency.TagLimitResetApi.as_view()),
    path("concurrency_limits/tag/<str:tag>", concurrency.TagLimitByTagApi.as_view()),
    path("concurrency_limits/<str:limit_id>", concurrency.TagLimitDetailApi.as_view()),
]
