"""Part (g): ``POST /task_runs/{id}/set_state`` round trips from concurrent async clients, as part
(c) does for flow runs.

Flow runs are created and set RUNNING (a task runs only while its flow run runs), then task runs
are created (PENDING, 10 per flow run, with the client's own ``TaskRunCreate`` body; timed
separately); then each of C clients (its own keep-alive
connection) takes task runs off a shared queue and drives each PENDING -> RUNNING -> COMPLETED with
the body ``PrefectClient.set_task_run_state`` sends (``StateCreate`` dumped in JSON mode, with
``task_run_id`` in its details, ``force: false``).
"""

from __future__ import annotations

import asyncio
import time
import uuid

from part_c import SetStateTally, _pct, drive_all
from servers import Target, log
from wire import WireError, create_flow, create_flow_run, http_client, set_state_body, timed_client

TRANSITIONS = ("RUNNING", "COMPLETED")


def task_run_create_body(flow_run_id: str, index: int) -> dict:
    """What ``PrefectClient.create_task_run`` posts for a plain ``@task`` (retries 0)."""
    from prefect.client.schemas.actions import TaskRunCreate
    from prefect.client.schemas.objects import TaskRunPolicy
    from prefect.states import Pending, to_state_create

    data = TaskRunCreate(
        name=f"bench-task-{index}",
        flow_run_id=uuid.UUID(flow_run_id),
        task_key="bench-task-6d5a1b9e",
        dynamic_key=str(index),
        tags=[],
        task_version=None,
        empirical_policy=TaskRunPolicy(retries=0, retry_delay=0, retry_jitter_factor=None),
        state=to_state_create(Pending()),
        task_inputs={},
    )
    return data.model_dump(mode="json", exclude={"id"})


def task_set_state_body(task_run_id: str, state_type: str) -> dict:
    """What ``PrefectClient.set_task_run_state`` posts for ``Running()`` / ``Completed()``."""
    from prefect.states import Completed, Running, to_state_create

    state = Running() if state_type == "RUNNING" else Completed()
    state_create = to_state_create(state)
    state_create.state_details.task_run_id = uuid.UUID(task_run_id)
    return {"state": state_create.model_dump(mode="json"), "force": False}


async def run_target(
    target: Target,
    *,
    clients: int,
    task_runs: int,
    per_flow_run: int = 10,
    warmup: int = 4,
    client_kind: str = "raw",
) -> dict:
    result: dict = {
        "clients": clients,
        "task_runs": task_runs,
        "task_runs_per_flow_run": per_flow_run,
        "transitions_per_run": len(TRANSITIONS),
        "client": client_kind,
    }
    limits = {"timeout": 60.0}
    total = task_runs + warmup
    n_flow_runs = -(-total // per_flow_run)
    async with http_client(target, **limits) as setup:
        try:
            flow_id = await create_flow(setup, "bench-task-set-state")
            sem = asyncio.Semaphore(8)

            async def one_flow_run() -> str:
                # A task enters RUNNING only while its flow run runs.
                async with sem:
                    run_id = (await create_flow_run(setup, flow_id))["id"]
                    r = await setup.post(
                        f"flow_runs/{run_id}/set_state", json=set_state_body(run_id, "RUNNING", "Running")
                    )
                    if r.status_code not in (200, 201) or r.json().get("status") != "ACCEPT":
                        raise WireError("POST /flow_runs/{id}/set_state RUNNING", r)
                    return run_id

            flow_run_ids = await asyncio.gather(*(one_flow_run() for _ in range(n_flow_runs)))
        except Exception as exc:
            result["error"] = f"setup: {exc}"
            return result
    bodies = [task_run_create_body(flow_run_ids[i // per_flow_run], i) for i in range(total)]

    queue: asyncio.Queue[str] = asyncio.Queue()
    create_lat: list[float] = []
    create_errors: list[str] = []
    todo = list(bodies)

    async def creator() -> None:
        async with timed_client(target, client_kind, **limits) as client:
            while todo:
                body = todo.pop()
                t = time.perf_counter()
                try:
                    r = await client.post("task_runs/", json=body)
                    if r.status_code not in (200, 201):
                        raise WireError("POST /task_runs/", r)  # type: ignore[arg-type]
                except Exception as exc:
                    create_errors.append(str(exc))
                    continue
                create_lat.append(time.perf_counter() - t)
                queue.put_nowait(r.json()["id"])

    t0 = time.perf_counter()
    await asyncio.gather(*(creator() for _ in range(clients)))
    create_wall = time.perf_counter() - t0
    create_lat.sort()
    result["create"] = {
        "requests": len(create_lat),
        "throughput_rps": round(len(create_lat) / create_wall, 1) if create_wall else None,
        "p50_ms": _pct(create_lat, 0.50),
        "p95_ms": _pct(create_lat, 0.95),
        "p99_ms": _pct(create_lat, 0.99),
    }
    if create_errors:
        result["create"]["errors"] = len(create_errors)
        result["create"]["first_error"] = create_errors[0]
    if queue.qsize() < 2:
        result["error"] = f"no task runs could be created: {create_errors[:1]}"
        return result

    # Bodies are built before the clock starts (building them with pydantic costs client CPU).
    prepared = {}
    for run_id in list(queue._queue):  # noqa: SLF001 - a snapshot of the ids
        prepared[run_id] = [task_set_state_body(run_id, stype) for stype in TRANSITIONS]

    tally = SetStateTally()

    async def drive(client, run_id: str, record: bool) -> None:
        for stype, body in zip(TRANSITIONS, prepared[run_id], strict=True):
            path = f"task_runs/{run_id}/set_state"
            if not await tally.post(client, path, body, stype, record=record, same_type=True):
                return

    async with timed_client(target, client_kind, **limits) as client:
        for _ in range(min(warmup, queue.qsize() - 1)):
            await drive(client, queue.get_nowait(), record=False)

    n_timed = queue.qsize()

    log(f"(g) {target.name}: {clients} clients driving {n_timed} task runs")
    wall = await drive_all(target, client_kind, limits, queue, drive, clients=clients)
    result.update({"timed_task_runs": n_timed, **tally.figures(wall)})
    return result


def run(targets: list[Target], *, clients: int, task_runs: int, client: str = "raw") -> dict:
    out: dict = {"servers": {}}
    for t in targets:
        res = asyncio.run(run_target(t, clients=clients, task_runs=task_runs, client_kind=client))
        out["servers"][t.name] = res
        log(f"(g) {t.name}: {res}")
    names = [t.name for t in targets]
    if "prefect" in names and "ours" in names:
        p, o = out["servers"]["prefect"], out["servers"]["ours"]
        if p.get("throughput_rps") and o.get("throughput_rps"):
            out["ratio_ours_over_prefect_throughput"] = round(o["throughput_rps"] / p["throughput_rps"], 2)
    return out
