"""A flow that suspends itself, served with ``flow.serve`` (the suspend tests).

    suspend_job.py serve --name N

Each time the run starts it appends ``{"pid", "flow_run_id", "run_count"}`` to ``marker`` (a JSON
line), then calls ``suspend_flow_run`` (with ``wait_for_input=Approval`` if asked); once resumed
and re-run, it appends ``{"resumed": true, ...the input}`` and completes."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from prefect import flow
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput


class Approval(RunInput):
    approved: bool
    note: str = ""


def _append(marker: str, line: dict) -> None:
    with Path(marker).open("a") as out:
        out.write(json.dumps(line) + "\n")


@flow(name="suspend-job")
def suspend_job(marker: str, timeout: int = 120, wait_for_input: bool = False) -> str:
    from prefect.runtime import flow_run

    _append(
        marker, {"pid": os.getpid(), "flow_run_id": str(flow_run.get_id()), "run_count": flow_run.run_count}
    )
    if wait_for_input:
        answer = suspend_flow_run(wait_for_input=Approval, timeout=timeout)
        _append(marker, {"resumed": True, "approved": answer.approved, "note": answer.note})
    else:
        suspend_flow_run(timeout=timeout)
        _append(marker, {"resumed": True})
    return "done"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["serve"])
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    print("SERVING", flush=True)
    suspend_job.serve(name=args.name)
