"""The flow of part (f): one parent flow that calls ``N`` subflows (default 100) in sequence, each
running ``M`` sequential tasks (default 10), in a fresh process started by part_f.py.

Prints one JSON line: import time, the wall time of the parent flow call, and the final state.
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


@flow(name="bench-child10")
def child(m: int = 10) -> int:
    s = 0
    for _ in range(m):
        s = inc(s)
    return s


@flow(name="bench-parent-subflows")
def parent(n: int = 100, m: int = 10) -> int:
    return sum(child(m) for _ in range(n))


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    t0 = time.perf_counter()
    state = parent(n, m, return_state=True)
    t1 = time.perf_counter()
    result = {
        "import_s": round(t_imported - t_start, 4),
        "call_s": round(t1 - t0, 4),
        "state": state.type.value,
        "value": state.result() if state.is_completed() else None,
        "flow_run_id": str(state.state_details.flow_run_id),
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    sys.exit(0 if state.is_completed() and result["value"] == n * m else 3)
