"""The flow of part (a): 40 sequential tasks, run in a fresh process by run.py.

Prints one JSON line: import time, the wall time of the flow call, and the final state type.
The client settings (PREFECT_API_URL, ...) come from the environment.
"""

from __future__ import annotations

import json
import sys
import time

t_start = time.perf_counter()

from prefect import flow, task  # noqa: E402

t_imported = time.perf_counter()


@task
def inc(x: int) -> int:
    return x + 1


@flow(name="bench-seq40")
def seq40(n: int = 40) -> int:
    s = 0
    for _ in range(n):
        s = inc(s)
    return s


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    t0 = time.perf_counter()
    state = seq40(n, return_state=True)
    t1 = time.perf_counter()
    result = {
        "import_s": round(t_imported - t_start, 4),
        "call_s": round(t1 - t0, 4),
        "state": state.type.value,
        "flow_run_id": str(state.state_details.flow_run_id),
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    sys.exit(0 if state.is_completed() else 3)
