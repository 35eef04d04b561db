"""A task run's set_state round trip with the real client: create a task run, move it through
Running and Completed with ``set_task_run_state``, read its states back."""

from __future__ import annotations

import json

from prefect import task
from prefect.client.orchestration import get_client
from prefect.states import Completed, Running


@task
def background_noop() -> None:
    return None


if __name__ == "__main__":
    with get_client(sync_client=True) as client:
        run = client.create_task_run(task=background_noop, flow_run_id=None, dynamic_key="state-roundtrip")
        again = client.create_task_run(task=background_noop, flow_run_id=None, dynamic_key="state-roundtrip")
        running = client.set_task_run_state(run.id, Running())
        completed = client.set_task_run_state(run.id, Completed())
        crashed = client.set_task_run_state(run.id, Completed(), force=False)
        states = client.read_task_run_states(run.id)
        read = client.read_task_run(run.id)
    out = {
        "task_run_id": str(run.id),
        "same_run": str(again.id) == str(run.id),
        "statuses": [running.status.value, completed.status.value, crashed.status.value],
        "state_names": [s.name for s in states],
        "final": read.state.type.value if read.state else None,
        "run_count": read.run_count,
    }
    print("RESULT " + json.dumps(out), flush=True)
