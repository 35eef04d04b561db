"""The flow the deployment and worker tests run. Self-contained (no ``_common``): the worker tests
copy this file into a scratch directory and deploy it with ``flow.from_source(<dir>, …)``.

``x`` is typed, so the deployment's parameter schema rejects a non-integer. With ``marker``, the
run writes ``{"pid", "flow_run_id"}`` there as soon as it starts (the test learns that the run is
executing and which process runs it), then sleeps ``sleep`` seconds."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from prefect import flow, get_run_logger


@flow(name="live-job")
def live_job(x: int = 1, sleep: float = 0.0, marker: str | None = None) -> int:
    from prefect.runtime import flow_run

    if marker:
        path = Path(marker)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "flow_run_id": str(flow_run.get_id())}))
        tmp.replace(path)
    get_run_logger().info("live-job x=%s sleep=%s", x, sleep)
    if sleep:
        time.sleep(sleep)
    return 2 * x
