"""One client process of part (l): the unmodified ``prefect`` client running a flow with subflows and
task runs again and again until a deadline, started by part_l.py (``PREFECT_API_URL`` and, for our
server, ``PREFECT_API_KEY`` come from the environment).

Each parent flow run submits ``concurrent`` tasks at once (``.submit``, Prefect's thread-pool task
runner), then calls ``subflows`` subflows in sequence, each running ``tasks`` sequential tasks, then
waits for the submitted tasks. After every parent run one JSON line is appended to the output file:
the parent's flow run id, the subflows' flow run ids and every task run id the client saw (the
submitted tasks' and the subflows' tasks'; the task runs that stand for the subflow calls in the
parent are found on the server through each subflow's ``parent_task_run_id``), the wall time of
the call and whether it completed. A parent run that raised is recorded with its error.

    python bench/load_client.py OUT_FILE DEADLINE_EPOCH [SUBFLOWS TASKS CONCURRENT]
"""

from __future__ import annotations

import json
import sys
import time
import traceback

from prefect import flow, task


@task
def work(x: int) -> int:
    return x + 1


@flow(name="bench-load-child")
def child(i: int, tasks: int) -> list[str]:
    seen = []
    value = i
    for _ in range(tasks):
        state = work(value, return_state=True)
        value = state.result()
        seen.append(str(state.state_details.task_run_id))
    return seen


@flow(name="bench-load-parent")
def parent(subflows: int, tasks: int, concurrent: int) -> dict:
    futures = [work.submit(i) for i in range(concurrent)]
    subflow_ids: list[str] = []
    task_run_ids: list[str] = []
    for i in range(subflows):
        state = child(i, tasks, return_state=True)
        subflow_ids.append(str(state.state_details.flow_run_id))
        task_run_ids += state.result()
    for i, fut in enumerate(futures):
        if fut.result() != i + 1:
            raise RuntimeError(f"submitted task {i} returned {fut.result()}")
        task_run_ids.append(str(fut.task_run_id))
    return {"subflows": subflow_ids, "task_runs": task_run_ids}


def main() -> int:
    out_path, deadline = sys.argv[1], float(sys.argv[2])
    subflows = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    tasks = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    concurrent = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    failures = 0
    with open(out_path, "a") as out:
        while time.time() < deadline:
            t0 = time.perf_counter()
            row: dict = {"started": time.time()}
            try:
                state = parent(subflows, tasks, concurrent, return_state=True)
                row["flow_run_id"] = str(state.state_details.flow_run_id)
                row["state"] = state.type.value
                if state.is_completed():
                    row.update(state.result())
                else:
                    row["error"] = f"parent ended {state.type.value}: {state.message}"
            except Exception as exc:  # noqa: BLE001 - recorded, the loop goes on
                row["error"] = f"{type(exc).__name__}: {exc}"[:1000]
                row["traceback"] = traceback.format_exc()[-3000:]
            row["call_s"] = round(time.perf_counter() - t0, 4)
            row["ended"] = time.time()
            failures += "error" in row
            out.write(json.dumps(row) + "\n")
            out.flush()
    return 0 if failures == 0 else 3


if __name__ == "__main__":
    sys.exit(main())
