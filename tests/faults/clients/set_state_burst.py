"""The real client moving ``RUNS`` flow runs through Running and Completed, ``WORKERS`` at a time,
while the server is killed and restarted under it. A transition whose answer was lost is proposed
again once the server is back, as a runner would (the server's rules reject a repeat); prints
``RESULT {json}`` with the runs and how each ended."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import traceback

from prefect import flow, get_client
from prefect.states import Completed, Pending, Running

RUNS = int(os.environ.get("RUNS", "40"))
WORKERS = int(os.environ.get("WORKERS", "8"))
DEADLINE = float(os.environ.get("DEADLINE_SECONDS", "90"))


@flow(name="burst")
def burst_flow() -> None:
    """Never run here: the flow runs are moved through their states by hand."""


async def move(client, run_id, deadline: float, retried: list[str]) -> str:
    for make in (Running, Completed):
        while True:
            try:
                answer = await client.set_flow_run_state(run_id, make())
            except Exception as error:  # the server went away for longer than the client's retries
                if time.monotonic() > deadline:
                    raise
                retried.append(type(error).__name__)
                await asyncio.sleep(0.5)
                continue
            if answer.status.value == "ACCEPT":
                break
            current = (await client.read_flow_run(run_id)).state
            if current is not None and current.type.value == make().type.value:
                break  # the lost answer's transition had been written
            raise AssertionError(f"{run_id}: {answer.status.value} {answer.details}")
    return (await client.read_flow_run(run_id)).state.type.value


async def main() -> dict:
    deadline = time.monotonic() + DEADLINE
    retried: list[str] = []
    async with get_client() as client:
        runs = [(await client.create_flow_run(burst_flow, state=Pending())).id for _ in range(RUNS)]
        print("CREATED", flush=True)
        queue: asyncio.Queue = asyncio.Queue()
        for run_id in runs:
            queue.put_nowait(run_id)
        ended: dict[str, str] = {}

        async def worker():
            while not queue.empty():
                run_id = queue.get_nowait()
                ended[str(run_id)] = await move(client, run_id, deadline, retried)

        await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return {"runs": ended, "retried": retried}


if __name__ == "__main__":
    try:
        result = asyncio.run(main())
    except BaseException as exc:
        traceback.print_exc()
        print("RESULT " + json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        sys.exit(2)
    print("RESULT " + json.dumps(result), flush=True)
