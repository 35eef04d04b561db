from __future__ import annotations

from orchestration.models import Log
from orchestration.schemas.actions import LogCreate
from tenants.scoping import current_workspace_id

LOG_BATCH_SIZE = 500


def logs_create(*, logs: list[LogCreate]) -> int:
    """Store a batch of log lines in one statement per ``LOG_BATCH_SIZE`` rows."""
    workspace_id = current_workspace_id()
    rows = [
        Log(
            workspace_id=workspace_id,
            name=log.name,
            level=log.level,
            message=log.message,
            timestamp=log.timestamp,
            flow_run_id=log.flow_run_id,
            task_run_id=log.task_run_id,
            worker_id=log.worker_id,
        )
        for log in logs
    ]
    Log.objects.bulk_create(rows, batch_size=LOG_BATCH_SIZE)
    return len(rows)
