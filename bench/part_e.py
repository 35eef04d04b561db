"""Part (e): ``POST /work_pools/{name}/get_scheduled_flow_runs`` under many concurrent pollers.

Setup over HTTP: a ``process`` work pool with three queues (plus its default queue), two
deployments (queues q1 and q2, no schedule) and ``SCHEDULED_RUNS`` SCHEDULED runs per deployment,
due a minute ago (nobody takes them, so every poll finds work). Then ``pollers`` async loops, each
with its own ``httpx.AsyncClient`` (its own connection, like one ``prefect worker`` each), POST the
poll the worker sends (``{"work_queue_names": [], "scheduled_before": <now>, "limit": 10}``) back to
back for ``duration`` seconds. Reported: requests/s, p50/p95/p99 latency, and non-200 answers.
The pollers use ``rawhttp.RawClient`` (``--http-client raw``, the default), a lean keep-alive
client, so that the load generator sharing the machine does not become the limit; ``httpx`` (as
the worker uses) is available with ``--http-client httpx``.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from servers import Target, log
from wire import create_flow, http_client, timed_client

POOL = "bench-pool"
QUEUES = ("q1", "q2", "q3")
SCHEDULED_RUNS = 20


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[k] * 1000, 2)


def _check(r, what: str) -> dict:
    if r.status_code not in (200, 201):
        raise RuntimeError(f"{what}: HTTP {r.status_code} {r.text[:800]}")
    return r.json() if r.content else {}


async def setup(target: Target) -> dict:
    async with http_client(target, timeout=60.0) as c:
        _check(
            await c.post(
                "work_pools/",
                json={"name": POOL, "type": "process", "base_job_template": {}, "is_paused": False},
            ),
            "POST /work_pools/",
        )
        for q in QUEUES:
            _check(await c.post(f"work_pools/{POOL}/queues", json={"name": q}), f"POST queue {q}")
        flow_id = await create_flow(c, "bench-poll")
        due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        runs = 0
        for i, q in enumerate(QUEUES[:2]):
            dep = _check(
                await c.post(
                    "deployments/",
                    json={
                        "name": f"bench-poll-{i}",
                        "flow_id": flow_id,
                        "work_pool_name": POOL,
                        "work_queue_name": q,
                        "schedules": [],
                        "parameters": {},
                        "enforce_parameter_schema": False,
                    },
                ),
                "POST /deployments/",
            )
            for _ in range(SCHEDULED_RUNS):
                _check(
                    await c.post(
                        f"deployments/{dep['id']}/create_flow_run",
                        json={
                            "state": {
                                "type": "SCHEDULED",
                                "name": "Scheduled",
                                "state_details": {"scheduled_time": due},
                            },
                            "parameters": {},
                        },
                    ),
                    "POST create_flow_run",
                )
                runs += 1
        # Sanity: one poll answers with runs.
        r = await c.post(
            f"work_pools/{POOL}/get_scheduled_flow_runs",
            json={"work_queue_names": [], "scheduled_before": datetime.now(UTC).isoformat(), "limit": 10},
        )
        first = _check(r, "first poll")
    return {"scheduled_runs": runs, "first_poll_returned": len(first) if isinstance(first, list) else None}


async def run_target(target: Target, *, pollers: int, duration: float, client: str = "raw") -> dict:
    res: dict = {"pollers": pollers, "duration_s": duration, "client": client}
    res.update(await setup(target))
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    returned: Counter[int] = Counter()
    errors: list[str] = []
    start = asyncio.Event()
    stop_at = 0.0

    async def poller() -> None:
        async with timed_client(target, client, timeout=120.0) as c:
            await start.wait()
            while time.perf_counter() < stop_at:
                body = {
                    "work_queue_names": [],
                    "scheduled_before": datetime.now(UTC).isoformat(),
                    "limit": 10,
                }
                t = time.perf_counter()
                try:
                    r = await c.post(f"work_pools/{POOL}/get_scheduled_flow_runs", json=body)
                except Exception as exc:  # noqa: BLE001
                    statuses["exception"] += 1
                    if len(errors) < 3:
                        errors.append(repr(exc))
                    continue
                dt = time.perf_counter() - t
                statuses[str(r.status_code)] += 1
                if r.status_code == 200:
                    latencies.append(dt)
                    # Entries counted without parsing (both servers answer compact JSON).
                    returned[r.content.count(b'"flow_run":')] += 1
                elif len(errors) < 3:
                    errors.append(f"HTTP {r.status_code} {r.text[:500]}")

    log(f"(e) {target.name}: {pollers} pollers for {duration:.0f}s")
    tasks = [asyncio.create_task(poller()) for _ in range(pollers)]
    await asyncio.sleep(0.2)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    stop_at = t0 + duration
    start.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0  # includes the tail of the last in-flight requests
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    # The pollers share one Python process (and the machine's cores with the servers): if this
    # nears 100 %, the client, not the server, is the limit.
    res["client_cpu_pct"] = round(
        100 * ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / wall, 1
    )
    latencies.sort()
    res.update(
        {
            "wall_s": round(wall, 2),
            "requests": sum(statuses.values()),
            "ok": len(latencies),
            "statuses": dict(statuses),
            "throughput_rps": round(len(latencies) / wall, 1) if wall else None,
            "p50_ms": _pct(latencies, 0.50),
            "p95_ms": _pct(latencies, 0.95),
            "p99_ms": _pct(latencies, 0.99),
            "max_ms": _pct(latencies, 1.0),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
            "runs_returned": {str(k): v for k, v in sorted(returned.items())},
        }
    )
    if errors:
        res["first_errors"] = errors
    return res


def run(targets: list[Target], *, pollers: int, duration: float, client: str = "raw") -> dict:
    out: dict = {"servers": {}}
    for t in targets:
        try:
            res = asyncio.run(run_target(t, pollers=pollers, duration=duration, client=client))
        except Exception as exc:  # noqa: BLE001
            res = {"error": f"{type(exc).__name__}: {str(exc)[-2500:]}"}
        out["servers"][t.name] = res
        log(f"(e) {t.name}: { {k: v for k, v in res.items() if k != 'runs_returned'} }")
    return out
