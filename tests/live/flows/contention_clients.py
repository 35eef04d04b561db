"""Many real clients at once, for ``tests/live/test_contention_live.py``: the unmodified ``prefect``
client, each user with its own ``PrefectClient`` / events client, all in this one process.

* ``FLOW_CLIENTS`` flow clients: create a flow run (Pending), set it Running, ship logs, set it
  Completed, again and again;
* ``LIMIT_USERS`` global-concurrency users: ``concurrency()`` (increment-with-lease, the lease
  renewal thread, decrement-with-lease), and the plain ``increment`` / ``release`` calls;
* ``EVENT_CLIENTS`` events clients (``get_events_client``, checkpointing every 30 events) emitting
  the Pending, Running, Completed events of new task runs of the flow runs made here.

For ``CONTENTION_SECONDS``; prints ``RESULT {json}`` with what was done: the flow runs completed,
the event ids emitted, the task run ids described.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import traceback
import uuid
from pathlib import Path

import httpx
from prefect import flow, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, LogCreate
from prefect.concurrency.asyncio import concurrency
from prefect.events import Event
from prefect.events.clients import get_events_client
from prefect.states import Completed, Pending, Running

FLOW_CLIENTS = int(os.environ.get("FLOW_CLIENTS", "16"))
LIMIT_USERS = int(os.environ.get("LIMIT_USERS", "8"))
EVENT_CLIENTS = int(os.environ.get("EVENT_CLIENTS", "4"))
SECONDS = float(os.environ.get("CONTENTION_SECONDS", "6"))
LIMIT_NAME = os.environ.get("LIMIT_NAME", "contention")

CAPTURED = json.loads(
    (Path(__file__).resolve().parents[2] / "orchestration/events/captured_events.json").read_text()
)
_TASK_EVENTS = [e for e in CAPTURED["seq"] if e["event"].startswith("prefect.task-run.")]
TEMPLATE = [
    e
    for e in _TASK_EVENTS
    if e["resource"]["prefect.resource.id"] == _TASK_EVENTS[0]["resource"]["prefect.resource.id"]
]


def task_run_events(flow_run_id: str) -> tuple[str, list[Event]]:
    """A new task run of ``flow_run_id``: its id and its events (Pending, Running, Completed)."""
    text = json.dumps(TEMPLATE)
    old_task_run = TEMPLATE[0]["resource"]["prefect.resource.id"].removeprefix("prefect.task-run.")
    old_flow_run = next(
        r["prefect.resource.id"].removeprefix("prefect.flow-run.")
        for r in TEMPLATE[0]["related"]
        if r["prefect.resource.role"] == "flow-run"
    )
    task_run_id = str(uuid.uuid4())
    text = text.replace(old_task_run, task_run_id).replace(old_flow_run, flow_run_id)
    text = text.replace(TEMPLATE[0]["payload"]["task_run"]["dynamic_key"], str(uuid.uuid4()))
    for event in TEMPLATE:
        text = text.replace(event["id"], str(uuid.uuid4()))
    return task_run_id, [Event.model_validate(e) for e in json.loads(text)]


@flow(name="contention")
def contention_flow() -> None:
    """Never run here: the flow runs are created and moved through their states by hand."""


async def flow_client(deadline: float, done: list[str]) -> None:
    async with get_client() as client:
        while True:  # at least once each, then until the deadline
            run = await client.create_flow_run(contention_flow, state=Pending())
            for state in (Running(), Completed()):
                answer = await client.set_flow_run_state(run.id, state)
                assert answer.status.value == "ACCEPT", answer
                await client.create_logs(
                    [
                        LogCreate(
                            name="prefect.flow_runs",
                            level=20,
                            message=f"{state.name} {n}",
                            timestamp=state.timestamp,
                            flow_run_id=run.id,
                        )
                        for n in range(3)
                    ]
                )
            done.append(str(run.id))
            if time.monotonic() >= deadline:
                return


async def limit_user(deadline: float, rounds: list[int]) -> None:
    async with get_client() as client:
        while True:  # at least once each, then until the deadline
            async with concurrency(LIMIT_NAME, occupy=1, lease_duration=60, strict=True):
                # Long enough for the lease renewal thread to renew once.
                await asyncio.sleep(0.5)
            try:
                await client.increment_concurrency_slots([LIMIT_NAME], 1, "concurrency")
            except httpx.HTTPStatusError as refused:
                if refused.response.status_code != 423:  # the limit is full: fine, try later
                    raise
            else:
                await client.release_concurrency_slots([LIMIT_NAME], 1, 0.01)
            rounds.append(1)
            if time.monotonic() >= deadline:
                return


async def event_client(
    deadline: float, flow_runs: list[str], emitted: list[str], task_runs: list[str]
) -> None:
    async with get_events_client(checkpoint_every=30) as events:
        n = 0
        while True:  # at least once each, then until the deadline
            task_run_id, batch = task_run_events(flow_runs[n % len(flow_runs)])
            n += 1
            for event in batch:
                await events.emit(event)
                emitted.append(str(event.id))
            task_runs.append(task_run_id)
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.01)


async def main() -> dict:
    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=LIMIT_NAME, limit=3))
        seeds = [str((await client.create_flow_run(contention_flow)).id) for _ in range(4)]
    deadline = time.monotonic() + SECONDS
    done: list[str] = []
    rounds: list[int] = []
    emitted: list[str] = []
    task_runs: list[str] = []
    await asyncio.gather(
        *(flow_client(deadline, done) for _ in range(FLOW_CLIENTS)),
        *(limit_user(deadline, rounds) for _ in range(LIMIT_USERS)),
        *(event_client(deadline, seeds, emitted, task_runs) for _ in range(EVENT_CLIENTS)),
    )
    return {"flow_runs": done, "rounds": len(rounds), "events": emitted, "task_runs": task_runs}


if __name__ == "__main__":
    try:
        result = asyncio.run(main())
    except BaseException as exc:
        traceback.print_exc()
        print("RESULT " + json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        sys.exit(2)
    print("RESULT " + json.dumps(result), flush=True)
