"""Shared by the flow scripts: run a flow, print one ``RESULT {json}`` line for the test to read."""

from __future__ import annotations

import json
import sys
import traceback

SEEN: dict = {}


def note_run() -> None:
    """Call first thing in a flow body: remembers the flow run id for the RESULT line."""
    from prefect.runtime import flow_run

    SEEN["flow_run_id"] = flow_run.get_id()
    SEEN["attempts"] = SEEN.get("attempts", 0) + 1


def main(flow_fn, **parameters) -> None:
    try:
        state = flow_fn(return_state=True, **parameters)
    except Exception as exc:  # the client failed before or outside the flow run
        traceback.print_exc()
        print(
            "RESULT " + json.dumps({"error": f"{type(exc).__name__}: {exc}", **SEEN}, default=str),
            flush=True,
        )
        sys.exit(2)
    flow_run_id = SEEN.get("flow_run_id") or state.state_details.flow_run_id
    out = {
        **SEEN,
        "flow_run_id": str(flow_run_id) if flow_run_id else None,
        "type": state.type.value,
        "name": state.name,
        "message": state.message,
    }
    print("RESULT " + json.dumps(out, default=str), flush=True)
