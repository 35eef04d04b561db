"""Resume a paused flow run from another process: ``argv[1]`` the run id, ``argv[2]`` the run
input as JSON (``null`` for none). Prints ``RESULT`` with the outcome (or the client's error) and
the run's states as ``read_flow_run_states`` reads them."""

from __future__ import annotations

import json
import sys
from uuid import UUID

from prefect import get_client
from prefect.flow_runs import resume_flow_run


def run() -> None:
    flow_run_id = UUID(sys.argv[1])
    run_input = json.loads(sys.argv[2])
    out: dict = {}
    try:
        resume_flow_run(flow_run_id, run_input=run_input)
        out["resumed"] = True
    except Exception as exc:  # the client's refusal is what the test checks
        out["error"] = f"{type(exc).__name__}: {exc}"
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(flow_run_id)
        out["states"] = [[s.type.value, s.name] for s in states]
        if states:
            last = client.read_flow_run_state(states[-1].id)
            out["last_state"] = [str(last.id), last.type.value, last.name]
            out["last_state_id"] = str(states[-1].id)
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    run()
