"""Routes for work pools, work queues and workers, mounted under the workspace prefix. Fixed
segments (``filter``, ``count``, ``name``) come before the ``<name>``/``<id>`` patterns they would
otherwise match."""

from __future__ import annotations

from django.urls import path

from orchestration.api import work_pools as api

urlpatterns: list = [
    # Work pools
    path("work_pools/", api.WorkPoolCreateApi.as_view()),
    path("work_pools/filter", api.WorkPoolFilterApi.as_view()),
    path("work_pools/count", api.WorkPoolCountApi.as_view()),
    path("work_pools/<str:name>", api.WorkPoolDetailApi.as_view()),
    path("work_pools/<str:name>/get_scheduled_flow_runs", api.WorkPoolGetScheduledFlowRunsApi.as_view()),
    # Queues of a pool
    path("work_pools/<str:name>/queues", api.WorkPoolQueueCreateApi.as_view()),
    path("work_pools/<str:name>/queues/filter", api.WorkPoolQueueFilterApi.as_view()),
    path("work_pools/<str:name>/queues/<str:queue_name>", api.WorkPoolQueueDetailApi.as_view()),
    # Workers of a pool (the worker-channel websocket ``workers/connect`` is refused by the router)
    path("work_pools/<str:name>/workers/heartbeat", api.WorkerHeartbeatApi.as_view()),
    path("work_pools/<str:name>/workers/filter", api.WorkerFilterApi.as_view()),
    path("work_pools/<str:name>/workers/<str:worker_name>", api.WorkerDetailApi.as_view()),
    # Work queues by id or name
    path("work_queues/filter", api.WorkQueueFilterApi.as_view()),
    path("work_queues/name/<str:name>", api.WorkQueueByNameApi.as_view()),
    path("work_queues/<str:queue_id>/get_runs", api.WorkQueueGetRunsApi.as_view()),
    path("work_queues/<str:queue_id>/status", api.WorkQueueStatusApi.as_view()),
    path("work_queues/<str:queue_id>", api.WorkQueueDetailApi.as_view()),
]
