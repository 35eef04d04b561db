"""Parent flows whose subflow runs long, served with ``serve`` (the cancellation tests).

    cancel_parent.py serve

serves three deployments: ``cancel-parent/cancel-dep`` (calls ``cancel-child`` in its own process),
``cancel-child/child-dep``, and ``cancel-deployed-parent/deployed-parent-dep`` (runs
``cancel-child/child-dep`` with ``run_deployment``: the subflow runs in another process). The child
writes ``{"pid", "flow_run_id", "parent_flow_run_id"}`` to ``marker`` as soon as it starts, then
sleeps ``sleep`` seconds."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from prefect import flow, serve
from prefect.deployments import run_deployment


@flow(name="cancel-child")
def cancel_child(marker: str, sleep: float) -> str:
    from prefect.runtime import flow_run

    path = Path(marker)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "flow_run_id": str(flow_run.get_id()),
                "parent_flow_run_id": str(flow_run.get_parent_flow_run_id()),
            }
        )
    )
    tmp.replace(path)
    time.sleep(sleep)
    return "child done"


@flow(name="cancel-parent")
def cancel_parent(marker: str, sleep: float = 120.0) -> str:
    return cancel_child(marker, sleep)


@flow(name="cancel-deployed-parent")
def cancel_deployed_parent(marker: str, sleep: float = 120.0) -> str:
    child = run_deployment("cancel-child/child-dep", parameters={"marker": marker, "sleep": sleep})
    return child.state.type.value


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["serve"])
    parser.parse_args()
    print("SERVING", flush=True)
    serve(
        cancel_parent.to_deployment(name="cancel-dep"),
        cancel_child.to_deployment(name="child-dep"),
        cancel_deployed_parent.to_deployment(name="deployed-parent-dep"),
    )
