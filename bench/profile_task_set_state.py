"""Where a task-run ``set_state`` spends its time: in-process (Django's test client, a fresh
PostgreSQL database dropped at the end), N task runs driven PENDING -> RUNNING -> COMPLETED with
the client's bodies (``part_g``), then the queries per request, the per-request time, and the
top of a cProfile of the timed requests (cumulative).

    python bench/profile_task_set_state.py [--task-runs 300] [--top 30] [--database-url postgres://…]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from collections import Counter

from inprocess import add_database_arguments, run_in_fresh_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task-runs", type=int, default=300)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true", help="time only (no cProfile overhead)")
    add_database_arguments(parser)
    run_in_fresh_database(parser.parse_args(), run, prefix="bench16_prof")


def run(args) -> None:
    import json

    from django.db import connection
    from django.test import Client
    from part_g import task_run_create_body, task_set_state_body

    from accounts.api_keys.services import api_key_create
    from accounts.models import User
    from accounts.tenancy import account_create, workspace_create
    from audit.actors import SYSTEM

    owner = User.objects.create_user("owner@bench.example")
    account = account_create(name="Bench", owner=owner, actor=SYSTEM, plan="enterprise")
    workspace = workspace_create(account=account, name="Bench", actor=SYSTEM)
    _, key = api_key_create(owner=owner, name="bench", actor=SYSTEM)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    base = f"/api/accounts/{account.id}/workspaces/{workspace.id}/"

    def post(path: str, body: dict) -> dict:
        r = client.post(base + path, data=json.dumps(body), content_type="application/json")
        assert r.status_code in (200, 201), (path, r.status_code, r.content[:500])
        return r.json()

    flow_id = post("flows/", {"name": "bench-prof"})["id"]
    flow_run_ids = []
    for _ in range(-(-(args.task_runs + 10) // 10)):
        run = post("flow_runs/", {"flow_id": flow_id, "state": {"type": "PENDING", "name": "Pending"}})
        flow_run_ids.append(run["id"])
        post(f"flow_runs/{run['id']}/set_state", {"state": {"type": "RUNNING", "name": "Running"}})
    task_runs = [
        post("task_runs/", task_run_create_body(flow_run_ids[i // 10], i))["id"]
        for i in range(args.task_runs + 10)
    ]
    bodies = {tr: [task_set_state_body(tr, s) for s in ("RUNNING", "COMPLETED")] for tr in task_runs}

    def drive(tr: str) -> None:
        for body in bodies[tr]:
            answer = post(f"task_runs/{tr}/set_state", body)
            assert answer["status"] == "ACCEPT", answer

    for tr in task_runs[:10]:  # warm-up
        drive(tr)
    timed = task_runs[10:]
    queries: Counter[str] = Counter()

    def count(execute, sql, params, many, context):
        queries[sql.split()[0].upper()] += 1
        return execute(sql, params, many, context)

    samples = []
    profiler = None if args.no_profile else cProfile.Profile()
    with connection.execute_wrapper(count):
        for tr in timed:
            t = time.perf_counter()
            if profiler:
                profiler.enable()
            drive(tr)
            if profiler:
                profiler.disable()
            samples.append((time.perf_counter() - t) / 2)
    n = len(timed) * 2
    samples.sort()
    print(f"\n{n} task-run set_state requests, in-process, PostgreSQL")
    print(
        f"per request: mean {statistics.fmean(samples) * 1000:.2f} ms, p50 {samples[len(samples) // 2] * 1000:.2f} ms"
        f"{' (under cProfile)' if profiler else ''}"
    )
    print(
        f"queries per request: {sum(queries.values()) / n:.2f} ("
        + ", ".join(f"{k} {v / n:.2f}" for k, v in queries.most_common())
        + ")"
    )
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
