"""Routes for work pools, work queues and workers, mounted under the workspace prefix. Fixed
segments (``filter``, ``count``, ``name``) come before the ``<name>``/``<id>`` patterns they would
otherwise match."""

from __future__ import annotations

from django.urls import path

from orchestration.api.work_pools import views

urlpatterns: list = [
    # Work pools
    path("work_pools/", views.WorkPoolCreateApi.as_view()),
    path("work_pools/filter", views.WorkPoolFilterApi.as_view()),
    path("work_pools/count", views.WorkPoolCountApi.as_view()),
    path("work_pools/<str:name>", views.WorkPoolDetailApi.as_view()),
    path("work_pools/<str:name>/concurrency_status", views.WorkPoolConcurrencyStatusApi.as_view()),
    path("work_pools/<str:name>/get_scheduled_flow_runs", views.WorkPoolGetScheduledFlowRunsApi.as_view()),
    # Queues of a pool
    path("work_pools/<str:name>/queues", views.WorkPoolQueueCreateApi.as_view()),
    path("work_pools/<str:name>/queues/filter", views.WorkPoolQueueFilterApi.as_view()),
    path("work_pools/<str:name>/queues/<str:queue_name>", views.WorkPoolQueueDetailApi.as_view()),
    # Workers of a pool (the worker-channel websocket ``workers/connect`` is refused by the router)
    path("work_pools/<str:name>/workers/heartbeat", views.WorkerHeartbeatApi.as_view()),
    path("work_pools/<str:name>/workers/filter", views.WorkerFilterApi.as_view()),
    path("work_pools/<str:name>/workers/<str:worker_name>", views.WorkerDetailApi.as_view()),
    # Work queues by id or name
    path("work_queues/", views.WorkQueueCreateApi.as_view()),
    path("work_queues/filter", views.WorkQueueFilterApi.as_view()),
    path("work_queues/name/<str:name>", views.WorkQueueByNameApi.as_view()),
    path("work_queues/<str:queue_id>/get_runs", views.WorkQueueGetRunsApi.as_view()),
    path("work_queues/<str:queue_id>/status", views.WorkQueueStatusApi.as_view()),
    path("work_queues/<str:queue_id>/concurrency_status", views.WorkQueueConcurrencyStatusApi.as_view()),
    path("work_queues/<str:queue_id>", views.WorkQueueDetailApi.as_view()),
]
