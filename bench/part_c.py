"""Part (c): ``POST /flow_runs/{id}/set_state`` round trips from concurrent async clients.

Flow runs are created first (PENDING, timed separately); then each of C clients (its own
connection) takes runs off a shared queue and drives each PENDING -> RUNNING -> COMPLETED. The timed
clients use ``rawhttp.RawClient`` by default (``--http-client httpx`` for httpx), so that the load
generator sharing the machine takes as little of it as it can.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter

from servers import Target, log
from wire import create_flow, create_flow_run, http_client, set_state_body, timed_client

TRANSITIONS = (("RUNNING", "Running"), ("COMPLETED", "Completed"))


async def drive_all(
    target: Target, client_kind: str, limits: dict, queue: asyncio.Queue, drive, *, clients: int
) -> float:
    """``clients`` connections drain ``queue`` concurrently, each item through ``drive(client,
    item, record=True)``; returns the wall time in seconds."""

    async def worker() -> None:
        async with timed_client(target, client_kind, **limits) as client:
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await drive(client, item, record=True)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - started


def figures(latencies: list[float], statuses: Counter, wall: float) -> dict:
    """Throughput and latency percentiles of a timed phase (``latencies`` in seconds)."""
    latencies.sort()
    ok = statuses.get("ACCEPT", 0)
    return {
        "requests": sum(statuses.values()),
        "accepted": ok,
        "statuses": dict(statuses),
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 1) if wall else None,
        "accepted_rps": round(ok / wall, 1) if wall else None,
        "p50_ms": _pct(latencies, 0.50),
        "p95_ms": _pct(latencies, 0.95),
        "p99_ms": _pct(latencies, 0.99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
    }


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[k] * 1000, 2)


class SetStateTally:
    """Outcomes and latencies of timed ``set_state`` calls (flow runs here, task runs in part (g))."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.errors: list[dict] = []

    async def post(
        self, client, path: str, body: dict, stype: str, *, record: bool, same_type: bool = False
    ) -> bool:
        """Propose ``body`` at ``path``; True to go on with the run's next transition. With
        ``same_type`` an accepted proposal must also land in the state proposed."""
        t = time.perf_counter()
        try:
            r = await client.post(path, json=body)
        except Exception as exc:
            if record:
                self.statuses["exception"] += 1
                self.errors.append({"proposed": stype, "exception": repr(exc)})
            return False
        dt = time.perf_counter() - t
        if not record:
            return True
        if r.status_code >= 400:
            self.statuses[f"HTTP {r.status_code}"] += 1
            self.errors.append({"proposed": stype, "status": r.status_code, "body": r.text[:1000]})
            return False
        self.latencies.append(dt)
        try:
            data = r.json()
            status = data.get("status")
            got = (data.get("state") or {}).get("type")
        except ValueError:
            status, got = "non-json", None
        self.statuses[f"{status}"] += 1
        if status != "ACCEPT" or (same_type and got != stype):
            self.errors.append(
                {"proposed": stype, "status": r.status_code, "body": r.text[:1000], "got": got}
            )
            return False
        return True

    def figures(self, wall: float) -> dict:
        out = figures(self.latencies, self.statuses, wall)
        if self.errors:
            out["errors"] = len(self.errors)
            out["first_errors"] = self.errors[:3]
        return out


async def run_target(
    target: Target, *, clients: int, flow_runs: int, warmup: int = 4, client_kind: str = "raw"
) -> dict:
    result: dict = {
        "clients": clients,
        "flow_runs": flow_runs,
        "transitions_per_run": len(TRANSITIONS),
        "client": client_kind,
    }
    limits = {"timeout": 60.0}
    async with http_client(target, **limits) as setup:
        try:
            flow_id = await create_flow(setup, "bench-set-state")
        except Exception as exc:
            result["error"] = f"setup: {exc}"
            return result

    # Create the flow runs with the same concurrency (timed: a useful second number).
    queue: asyncio.Queue[str] = asyncio.Queue()
    create_lat: list[float] = []
    create_errors: list[str] = []

    async def creator(n: int) -> None:
        async with http_client(target, **limits) as client:
            for _ in range(n):
                t = time.perf_counter()
                try:
                    run = await create_flow_run(client, flow_id)
                except Exception as exc:
                    create_errors.append(str(exc))
                    continue
                create_lat.append(time.perf_counter() - t)
                queue.put_nowait(run["id"])

    total_runs = flow_runs + warmup
    per = [total_runs // clients + (1 if i < total_runs % clients else 0) for i in range(clients)]
    t0 = time.perf_counter()
    await asyncio.gather(*(creator(n) for n in per))
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
    if queue.empty():
        result["error"] = f"no flow runs could be created: {create_errors[:1]}"
        return result

    tally = SetStateTally()

    async def drive(client, run_id: str, record: bool) -> None:
        for stype, sname in TRANSITIONS:
            body = set_state_body(run_id, stype, sname)
            if not await tally.post(client, f"flow_runs/{run_id}/set_state", body, stype, record=record):
                return

    # Warm-up (each worker process / connection pool gets a few calls first; not counted).
    async with http_client(target, **limits) as client:
        for _ in range(min(warmup, queue.qsize() - 1)):
            await drive(client, queue.get_nowait(), record=False)

    n_timed = queue.qsize()

    log(f"(c) {target.name}: {clients} clients driving {n_timed} flow runs")
    wall = await drive_all(target, client_kind, limits, queue, drive, clients=clients)
    result.update({"timed_flow_runs": n_timed, **tally.figures(wall)})
    return result


def run(targets: list[Target], *, clients: int, flow_runs: int, client: str = "raw") -> dict:
    out: dict = {"servers": {}}
    for t in targets:
        res = asyncio.run(run_target(t, clients=clients, flow_runs=flow_runs, client_kind=client))
        out["servers"][t.name] = res
        log(f"(c) {t.name}: {res}")
    return out
