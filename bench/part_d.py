"""Part (d): the scheduler over N deployments (one flow, one interval schedule each).

Setup (not the measured part):
  * Prefect: one deployment over HTTP, then N-1 copies of its ``deployment`` and
    ``deployment_schedule`` rows made with one ``INSERT ... SELECT`` each in PostgreSQL (its API
    creates ~25 deployments/s on 2 cores, ~7 min for 10,000); ``--deployments-over-http`` creates
    them all with ``POST /deployments/`` from ``concurrency`` clients instead.
  * ours: one deployment over HTTP (so the stored schedule is exactly what the API writes), then
    N-1 clones of it bulk-inserted through the ORM (``manage.py shell``): the API enforces the
    account's plan limit on deployments (5-50), and it locks the account row per creation.

Measured: the scheduler itself, in a fresh subprocess with the server's environment, called twice:
  * ours: ``orchestration.services.scheduler.scheduler_tick()``;
  * Prefect: ``prefect.server.services.scheduler.schedule_deployments()`` (the perpetual service
    function ``prefect server start`` runs every ``loop_seconds``; its in-server copy is disabled
    for this run with ``PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED=false`` so the two do not race).
The first call creates the runs ahead (3 per deployment with the defaults), the second is the
per-tick cost when nothing is due. Reported: both times, runs created (counted in PostgreSQL,
``auto_scheduled``), and the subprocess's peak RSS (``VmHWM``).

``--prefect-scheduler server`` measures Prefect's scheduler where it normally runs instead: inside
``prefect server start`` (loop every ``PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS``, 5 s here),
from the moment the deployments are committed until PostgreSQL holds 3 auto-scheduled runs per
deployment (polled every 0.5 s); the RSS is then the peak of the whole server's process group, and
there is no idle-tick figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import servers
from servers import PY, ROOT, Target, log
from wire import create_flow, http_client

INTERVAL_S = 3600

OURS_CLONE = r"""
import json, sys, time, uuid
from orchestration.models import Deployment, DeploymentSchedule
src = Deployment.objects.unscoped().get(id=SRC_ID)
sched = DeploymentSchedule.objects.unscoped().get(deployment_id=src.id)
t0 = time.perf_counter()
B = 2000
made = 0
while made < COUNT:
    n = min(B, COUNT - made)
    deps, scheds = [], []
    for i in range(made, made + n):
        d = Deployment(
            id=uuid.uuid4(), workspace_id=src.workspace_id, flow_id=src.flow_id,
            name=f"bench-dep-c{i:06d}", paused=False, parameters={}, tags=[], labels=src.labels,
            work_queue_id=src.work_queue_id, work_queue_name=src.work_queue_name,
        )
        deps.append(d)
        scheds.append(DeploymentSchedule(
            id=uuid.uuid4(), workspace_id=src.workspace_id, deployment_id=d.id,
            schedule=sched.schedule, active=True, parameters={},
        ))
    Deployment.objects.unscoped().bulk_create(deps)
    DeploymentSchedule.objects.unscoped().bulk_create(scheds)
    made += n
print("BENCHJSON " + json.dumps({"cloned": made, "clone_s": time.perf_counter() - t0}))
"""

OURS_TICK = r"""
import json, time
t0 = time.perf_counter()
from orchestration.services.scheduler import scheduler_tick
imp = time.perf_counter() - t0
t = time.perf_counter(); c1 = scheduler_tick(); s1 = time.perf_counter() - t
t = time.perf_counter(); c2 = scheduler_tick(); s2 = time.perf_counter() - t
rss = [int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")][0] / 1024
print("BENCHJSON " + json.dumps({"import_s": imp, "tick1_s": s1, "created1": c1, "tick2_s": s2,
      "created2": c2, "peak_rss_mb": rss}))
"""

PREFECT_TICK = r"""
import asyncio, json, time
t0 = time.perf_counter()
from prefect.server.services.scheduler import schedule_deployments
imp = time.perf_counter() - t0

async def main():
    t = time.perf_counter(); await schedule_deployments(); s1 = time.perf_counter() - t
    t = time.perf_counter(); await schedule_deployments(); s2 = time.perf_counter() - t
    return s1, s2

s1, s2 = asyncio.run(main())
rss = [int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")][0] / 1024
print("BENCHJSON " + json.dumps({"import_s": imp, "tick1_s": s1, "tick2_s": s2, "peak_rss_mb": rss}))
"""


def _bench_json(proc: subprocess.CompletedProcess, what: str) -> dict:
    for line in proc.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON ") :])
    raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")


def _schedule() -> dict:
    anchor = datetime(2020, 1, 1, tzinfo=UTC).isoformat()
    return {"interval": INTERVAL_S, "anchor_date": anchor, "timezone": "UTC"}


def _deployment_body(flow_id: str, name: str) -> dict:
    return {
        "name": name,
        "flow_id": flow_id,
        "schedules": [{"schedule": _schedule(), "active": True}],
        "paused": False,
        "parameters": {},
        "tags": [],
        "enforce_parameter_schema": False,
    }


async def _create_http(target: Target, n: int, concurrency: int) -> tuple[str, list[str], list[str]]:
    errors: list[str] = []
    ids: list[str] = []
    async with http_client(target, timeout=120.0) as setup:
        flow_id = await create_flow(setup, "bench-scheduler")
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        async with http_client(target, timeout=120.0) as client:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                r = await client.post("deployments/", json=_deployment_body(flow_id, f"bench-dep-{i:06d}"))
                if r.status_code not in (200, 201):
                    errors.append(f"HTTP {r.status_code} {r.text[:500]}")
                else:
                    ids.append(r.json()["id"])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return flow_id, ids, errors


def _count_runs(target: Target) -> int:
    table = "flow_run" if target.name == "prefect" else "orchestration_flowrun"
    return int(servers.psql(f"SELECT count(*) FROM {table} WHERE auto_scheduled", db=target.db))  # noqa: S608


def _count_deployments(target: Target) -> int:
    # Deployments with a schedule (part (e)'s two unscheduled ones are not counted).
    table = "deployment_schedule" if target.name == "prefect" else "orchestration_deploymentschedule"
    return int(servers.psql(f"SELECT count(DISTINCT deployment_id) FROM {table}", db=target.db))  # noqa: S608


def _prefect_clone_sql(target: Target, src_id: str, count: int) -> None:
    def cols(table: str) -> list[str]:
        out = servers.psql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "  # noqa: S608
            + f"AND table_name = '{table}' ORDER BY ordinal_position",
            db=target.db,
        )
        return out.split()

    dep_cols = cols("deployment")
    sel = []
    for c in dep_cols:
        if c == "id":
            sel.append("('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid")
        elif c == "name":
            sel.append("'bench-dep-c' || lpad(g::text, 6, '0')")
        else:
            sel.append(f'd."{c}"')
    sch_cols = cols("deployment_schedule")
    sel2 = []
    for c in sch_cols:
        if c == "id":
            sel2.append("gen_random_uuid()")
        elif c == "deployment_id":
            sel2.append("('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid")
        else:
            sel2.append(f's."{c}"')
    collist = ", ".join(f'"{c}"' for c in dep_cols)
    collist2 = ", ".join(f'"{c}"' for c in sch_cols)
    servers.psql(
        f"BEGIN; INSERT INTO deployment ({collist}) SELECT {', '.join(sel)} "  # noqa: S608
        f"FROM deployment d, generate_series(1, {count}) g WHERE d.id = '{src_id}'; "
        f"INSERT INTO deployment_schedule ({collist2}) SELECT {', '.join(sel2)} "
        f"FROM deployment_schedule s, generate_series(1, {count}) g WHERE s.deployment_id = '{src_id}'; "
        "COMMIT;",
        db=target.db,
    )


def _group_rss_mb(pgid: int) -> float:
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.getpgid(int(d.name)) != pgid:
                continue
            for line in (d / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError, ValueError):
            continue
    return total / 1024


def _wait_in_server(target: Target, expected: int, settle: float = 60.0, max_wait: float = 900.0) -> dict:
    """Poll PostgreSQL until ``expected`` auto-scheduled runs exist (Prefect's in-server scheduler)."""
    t0 = time.perf_counter()
    pgid = target.procs[0].pid
    peak_rss = 0.0
    last, last_change = -1, t0
    timeline = []
    while True:
        n = _count_runs(target)
        now = time.perf_counter()
        peak_rss = max(peak_rss, _group_rss_mb(pgid))
        if n != last:
            last, last_change = n, now
            timeline.append((round(now - t0, 1), n))
        if n >= expected or now - last_change > settle or now - t0 > max_wait:
            break
        time.sleep(0.5)
    return {
        "runs_ahead_s": round(last_change - t0, 2) if last >= expected else None,
        "gave_up_after_s": None if last >= expected else round(time.perf_counter() - t0, 1),
        "peak_rss_mb": round(peak_rss, 1),
        "rss_of": "prefect server process group",
        "timeline": timeline[-50:],
    }


def run_target(
    target: Target,
    *,
    deployments: int,
    concurrency: int,
    over_http: bool = False,
    prefect_scheduler: str = "process",
) -> dict:
    res: dict = {"deployments": deployments, "interval_s": INTERVAL_S}
    t0 = time.perf_counter()
    if target.name == "prefect" and over_http:
        res["setup_method"] = f"HTTP POST /deployments/ x{deployments}, {concurrency} clients"
        _, ids, errors = asyncio.run(_create_http(target, deployments, concurrency))
    elif target.name == "prefect":
        res["setup_method"] = "1 over HTTP, the rest copied with INSERT ... SELECT in PostgreSQL"
        _, ids, errors = asyncio.run(_create_http(target, 1, 1))
        if ids and deployments > 1:
            _prefect_clone_sql(target, ids[0], deployments - 1)
    else:
        res["setup_method"] = "1 over HTTP, the rest cloned with the ORM (bulk_create)"
        _, ids, errors = asyncio.run(_create_http(target, 1, 1))
        if ids and deployments > 1:
            code = OURS_CLONE.replace("SRC_ID", repr(ids[0])).replace("COUNT", str(deployments - 1))
            out = subprocess.run(
                [PY, "manage.py", "shell", "-c", code],
                cwd=ROOT,
                env=target.env,
                capture_output=True,
                text=True,
            )
            res["clone"] = _bench_json(out, "ORM clone")
    res["setup_s"] = round(time.perf_counter() - t0, 2)
    res["deployments_in_db"] = _count_deployments(target)
    if errors:
        res["setup_errors"] = len(errors)
        res["first_error"] = errors[0]
    res["setup_rate_per_s"] = round(res["deployments_in_db"] / res["setup_s"], 1) if res["setup_s"] else None
    res["runs_before"] = _count_runs(target)
    if target.name == "prefect" and prefect_scheduler == "server":
        res["scheduler"] = "in prefect server start (loop)"
        log(f"(d) prefect: waiting for the in-server scheduler to create {3 * deployments} runs")
        res.update(_wait_in_server(target, expected=3 * deployments))
        res["runs_after"] = _count_runs(target)
        res["runs_created"] = res["runs_after"]
        res["runs_per_deployment"] = round(res["runs_created"] / max(1, res["deployments_in_db"]), 2)
        if res.get("runs_ahead_s"):
            res["runs_per_s"] = round(res["runs_created"] / res["runs_ahead_s"], 0)
        return res
    res["scheduler"] = "subprocess, scheduler function called twice"
    log(
        f"(d) {target.name}: {res['deployments_in_db']} deployments in {res['setup_s']}s; "
        f"{res['runs_before']} auto-scheduled runs before the first tick; running the scheduler"
    )
    if target.name == "prefect":
        argv = [PY, "-c", PREFECT_TICK]
    else:
        argv = [PY, "manage.py", "shell", "-c", OURS_TICK]
    t = time.perf_counter()
    out = subprocess.run(argv, cwd=ROOT, env=target.env, capture_output=True, text=True)
    res["process_wall_s"] = round(time.perf_counter() - t, 2)
    tick = _bench_json(out, "scheduler subprocess")
    res.update({k: round(v, 3) if isinstance(v, float) else v for k, v in tick.items()})
    res["runs_after"] = _count_runs(target)
    res["runs_created"] = res["runs_after"] - res["runs_before"]
    res["runs_per_deployment"] = round(res["runs_created"] / max(1, res["deployments_in_db"]), 2)
    res["runs_per_s"] = round(res["runs_created"] / res["tick1_s"], 0) if res.get("tick1_s") else None
    res["runs_ahead_s"] = res.get("tick1_s")
    return res


def run(
    targets: list[Target],
    *,
    deployments: int,
    concurrency: int = 16,
    over_http: bool = False,
    prefect_scheduler: str = "process",
) -> dict:
    out: dict = {"servers": {}}
    for t in targets:
        try:
            res = run_target(
                t,
                deployments=deployments,
                concurrency=concurrency,
                over_http=over_http,
                prefect_scheduler=prefect_scheduler,
            )
        except Exception as exc:  # noqa: BLE001
            res = {"error": f"{type(exc).__name__}: {str(exc)[-2500:]}"}
        out["servers"][t.name] = res
        log(f"(d) {t.name}: {res}")
    return out
