"""Read a flow run's tree back through the client (``read_flow_runs``/``read_task_runs`` with
filters, ``read_flow_run``/``read_task_run``), and print it in a form that names no ids, so the same
run on two servers gives the same RESULT: every flow run of the tree by flow name, with its state,
its parent task run (the flow run that holds it, its state and inputs), and its task runs (name
stem, state, inputs named by the task run they came from)."""

from __future__ import annotations

import asyncio
import json
import sys

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)


def _stem(name: str) -> str:
    return name.rsplit("-", 1)[0]


TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


async def settled_task_runs(client, flow_run_ids, timeout: float = 20.0) -> list:
    """The task runs of these flow runs once all are final and two reads agree (both servers record
    task runs from the client's events, a moment after the flow has returned)."""
    flow_run_filter = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=flow_run_ids))
    previous = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        task_runs = await client.read_task_runs(task_run_filter=flow_run_filter)
        seen = sorted((str(t.id), t.state.type.value if t.state else None) for t in task_runs)
        if seen == previous and all(state in TERMINAL for _, state in seen):
            return task_runs
        if loop.time() > deadline:
            return task_runs
        previous = seen
        await asyncio.sleep(0.5)


async def tree(top_id: str) -> dict:
    async with get_client() as client:
        top = await client.read_flow_run(top_id)
        runs = [top]
        frontier = [top]
        while frontier:
            children = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[r.id for r in frontier])
                )
            )
            runs += children
            frontier = children
        flow_names = {r.id: (await client.read_flow(r.flow_id)).name for r in runs}
        task_runs = await settled_task_runs(client, [r.id for r in runs])
        by_id = {t.id: t for t in task_runs}

        def task_label(task_run_id) -> str:
            task_run = by_id.get(task_run_id)
            return _stem(task_run.name) if task_run else f"unknown {task_run_id}"

        def upstream(value) -> str:
            if value.input_type == "task_run":
                return task_label(value.id)
            if value.input_type == "flow_run":
                return flow_names.get(value.id, f"unknown {value.id}")
            return ""

        def inputs(task_run) -> dict:
            out = {}
            for key, values in sorted(task_run.task_inputs.items()):
                out[key] = sorted(f"{v.input_type}:{upstream(v)}" for v in values)
            return out

        out = {}
        for run in runs:
            mine = sorted(
                (t for t in task_runs if t.flow_run_id == run.id), key=lambda t: (_stem(t.name), t.name)
            )
            parent = None
            if run.parent_task_run_id:
                parent_task = await client.read_task_run(run.parent_task_run_id)
                parent = {
                    "flow": flow_names.get(parent_task.flow_run_id),
                    "name": _stem(parent_task.name),
                    "state": parent_task.state.type.value,
                    "child": str(parent_task.state.state_details.child_flow_run_id) == str(run.id),
                    "inputs": inputs(parent_task),
                }
            out[flow_names[run.id]] = {
                "state": run.state.type.value,
                "parent_flow": flow_names.get(
                    (await client.read_task_run(run.parent_task_run_id)).flow_run_id
                )
                if run.parent_task_run_id
                else None,
                "parent_task": parent,
                "task_runs": [
                    {"name": _stem(t.name), "state": t.state.type.value, "inputs": inputs(t)} for t in mine
                ],
            }
        return out


if __name__ == "__main__":
    print("RESULT " + json.dumps(asyncio.run(tree(sys.argv[1])), sort_keys=True), flush=True)
