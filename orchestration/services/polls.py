"""A worker's poll, recorded: the queues it polled, then the deployments that run from them.

It sits above both the work-pool and the deployment services, so neither imports the other's
poll bookkeeping (deployments use the work-pool services; the work-pool services know nothing of
deployments).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from orchestration.models import Deployment, WorkQueue
from orchestration.services.deployments import deployments_record_poll
from orchestration.services.work_pools import work_queues_stamp_polled


def work_queues_record_poll(*, queues: Sequence[WorkQueue], now: dt.datetime) -> None:
    """Stamp ``last_polled`` on the polled queues (``work_queues_stamp_polled``), and record the
    poll on the deployments that run from the queues stamped (``deployments_record_poll``: their
    ``last_polled``, READY, and the ready event)."""
    queue_ids = work_queues_stamp_polled(queues=queues, now=now)
    if not queue_ids:
        return
    deployment_ids = list(Deployment.objects.filter(work_queue_id__in=queue_ids).values_list("id", flat=True))
    if deployment_ids:
        deployments_record_poll(deployment_ids=deployment_ids, now=now)
