"""A proactive automation and two flow runs, with the unmodified client: ``Automation(…).create()``
whose trigger expects a flow run's ``Completed`` within 10 s (the least Prefect allows) of its
``Running``, one window per run; then a run that completes at once, and one that waits for the
test (until ``MARKER`` exists, 90 s at most) before it completes. Prints one ``RESULT
{"automation_id", "quick", "slow"}`` (the runs' ids) or ``{"error": …}``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from prefect import flow
from prefect.automations import Automation
from prefect.events.actions import DoNothing
from prefect.events.schemas.automations import EventTrigger, Posture


@flow(name="quick-job")
def quick_job() -> str:
    return "done"


@flow(name="slow-job")
def slow_job(marker: str) -> str:
    deadline = time.monotonic() + 90
    while not Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return "done"


if __name__ == "__main__":
    out: dict = {}
    try:
        automation = Automation(
            name="runs-finish-in-time",
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                after={"prefect.flow-run.Running"},
                expect={"prefect.flow-run.Completed"},
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=10,
            ),
            actions=[DoNothing()],
        ).create()
        out["automation_id"] = str(automation.id)
        for name, job, kwargs in (
            ("quick", quick_job, {}),
            ("slow", slow_job, {"marker": os.environ["MARKER"]}),
        ):
            state = job(return_state=True, **kwargs)
            out[name] = str(state.state_details.flow_run_id)
            out[f"{name}_state"] = state.type.value
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print("RESULT " + json.dumps(out, default=str), flush=True)
