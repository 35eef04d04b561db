#!/usr/bin/env python
"""Benchmark this control plane against Prefect's own server, side by side on this machine.

Starts Prefect's server (``prefect server start`` on a fresh PostgreSQL database) and ours (fresh
database, migrate, bootstrap, uvicorn), then measures:

  (a) the 40-sequential-task flow with the real client, a fresh process per run, interleaved;
  (b) a burst of task-run events over concurrent ``/events/in`` websockets: send rate, time until
      every event and task run is in the database, and losses;
  (c) ``set_state`` round trips from concurrent async clients: throughput and p50/p95/p99;
  (d) the scheduler over N deployments: time to create the runs ahead, idle-tick cost, peak RSS;
  (e) ``work_pools/{name}/get_scheduled_flow_runs`` under many concurrent pollers;
  (f) a flow calling 100 subflows of 10 tasks each with the real client (``--only f``);
  (g) task-run ``set_state`` round trips from concurrent clients, as (c) (``--only g``);
  (h) ``Secret.load`` round trips with the real client (``--only h``);
  (i) the requests Prefect's UI makes, on a big generated workspace (``--only i``, ``--i-scale``);
  (j) the admin console's pages on a big account, ours only (``--only j``, ``--j-scale``);
  (k) automations under a sustained event stream: every expected firing once, trigger-to-action
      latency, ingest with and without automations (``--only k``);
  (l) load and soak: N real client processes looping flows with subflows and task runs against
      2 web processes, 2 Celery workers and beat: no lost run, no 5xx, latency per route,
      throughput, memory of every server process over time (``--only l``).
  (m) the retention purge on a big workspace, ours only: sizes before and after, the longest batch
      transaction, a concurrent writer's latency (``--only m --servers ours``, ``--m-scale``).

Prints a table and writes ``bench/results/<timestamp>.json``. Every process and database it starts
is stopped / dropped at the end, also on Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import part_a  # noqa: E402
import part_b  # noqa: E402
import part_c  # noqa: E402
import part_d  # noqa: E402
import part_e  # noqa: E402
import part_f  # noqa: E402
import part_g  # noqa: E402
import part_h  # noqa: E402
import part_i  # noqa: E402
import part_j  # noqa: E402
import part_k  # noqa: E402
import part_l  # noqa: E402
import part_m  # noqa: E402
import servers  # noqa: E402
from servers import log  # noqa: E402

#: Prefect's loop services that read or sweep runs, off while part (i) runs.
I_PREFECT_SERVICES_OFF = (
    "CANCELLATION_CLEANUP",
    "LATE_RUNS",
    "FOREMAN",
    "PAUSE_EXPIRATIONS",
    "REPOSSESSOR",
    "SCHEDULER",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short smoke run (fewer runs, events, requests)")
    p.add_argument(
        "--only", default="a,b,c,d,e", help="parts to run, comma-separated: a-m (default a,b,c,d,e)"
    )
    p.add_argument("--servers", default="prefect,ours", help="servers to start (default prefect,ours)")
    p.add_argument("--runs", type=int, help="(a) timed flow runs per server (default 5; quick 2)")
    p.add_argument("--tasks", type=int, default=40, help="(a) tasks per flow (default 40)")
    p.add_argument("--events", type=int, help="(b) events in the burst (default 20000; quick 1500)")
    p.add_argument("--connections", type=int, default=4, help="(b) concurrent /events/in sockets (default 4)")
    p.add_argument(
        "--settle",
        type=float,
        help="(b) give up after this long without DB progress (default 60 s; quick 20)",
    )
    p.add_argument("--max-wait", type=float, default=1800, help="(b) hard limit per server (default 1800 s)")
    p.add_argument("--clients", type=int, default=16, help="(c) concurrent clients (default 16)")
    p.add_argument(
        "--flow-runs",
        type=int,
        help="(c) flow runs driven PENDING->RUNNING->COMPLETED (default 800; quick 64)",
    )
    p.add_argument(
        "--deployments", type=int, help="(d) deployments, one schedule each (default 10000; quick 1000)"
    )
    p.add_argument(
        "--deployments-over-http",
        action="store_true",
        help="(d) create all of Prefect's deployments with POST /deployments/ (slow) instead of SQL copies",
    )
    p.add_argument(
        "--prefect-scheduler",
        choices=("process", "server"),
        default="process",
        help="(d) run Prefect's scheduler function in its own process, timed per tick (default), or "
        "measure the one inside `prefect server start` (loop 5 s) by polling PostgreSQL",
    )
    p.add_argument("--subflows", type=int, default=100, help="(f) subflows per parent flow (default 100)")
    p.add_argument("--subflow-tasks", type=int, default=10, help="(f) tasks per subflow (default 10)")
    p.add_argument("--f-runs", type=int, help="(f) timed parent-flow runs per server (default 3; quick 1)")
    p.add_argument(
        "--f-warmup",
        type=int,
        default=0,
        help="(f) untimed parent-flow runs per server first (default 0: one run is 1,100 flow runs)",
    )
    p.add_argument(
        "--task-runs",
        type=int,
        help="(g) task runs driven PENDING->RUNNING->COMPLETED (default 800; quick 64)",
    )
    p.add_argument(
        "--loads", type=int, help="(h) Secret.load calls per client process (default 200; quick 50)"
    )
    p.add_argument("--h-runs", type=int, help="(h) client processes per server (default 3; quick 1)")
    p.add_argument(
        "--i-scale",
        type=float,
        default=1.0,
        help="(i) size of the big workspace, 1.0 = 1,000,000 flow runs, 10,000,000 task runs and events "
        "(default 1.0; 0.1 generates in about 3 min per server on 2 CPUs)",
    )
    p.add_argument("--k-rate", type=float, default=2000.0, help="(k) events per second (default 2000)")
    p.add_argument("--k-seconds", type=float, default=120.0, help="(k) seconds of events (default 120)")
    p.add_argument("--k-automations", type=int, default=100, help="(k) automations (default 100)")
    p.add_argument(
        "--k-workspaces",
        type=int,
        default=10,
        help="(k) our workspaces the automations are spread over (default 10)",
    )
    p.add_argument("--l-clients", type=int, default=50, help="(l) client processes (default 50)")
    p.add_argument(
        "--l-minutes", type=float, default=10.0, help="(l) minutes the clients loop (default 10; soak: 60)"
    )
    p.add_argument("--l-subflows", type=int, default=2, help="(l) subflows per parent flow (default 2)")
    p.add_argument("--l-tasks", type=int, default=3, help="(l) sequential tasks per subflow (default 3)")
    p.add_argument(
        "--l-concurrent", type=int, default=4, help="(l) tasks submitted at once per parent flow (default 4)"
    )
    p.add_argument(
        "--l-sample-seconds", type=float, default=60.0, help="(l) RSS sampling period (default 60 s)"
    )
    p.add_argument(
        "--celery-workers",
        type=int,
        default=None,
        help="Celery worker instances with --celery (default 1; 2 for (l))",
    )
    p.add_argument(
        "--m-scale",
        type=float,
        default=1.0,
        help="(m) size of the purged workspace, 1.0 = 100,000 flow runs, 1,000,000 task runs, logs and "
        "events (default 1.0)",
    )
    p.add_argument(
        "--m-baseline",
        type=float,
        default=20.0,
        help="(m) seconds the writer runs before the purge, for its baseline latency (default 20)",
    )
    p.add_argument("--i-requests", type=int, default=30, help="(i) timed requests of each kind (default 30)")
    p.add_argument(
        "--j-scale",
        type=float,
        default=1.0,
        help="(j) size of the big account, 1.0 = 1,000 members, 100 teams, 200 service accounts, "
        "1,000,000 audit events (default 1.0; about 1 min to generate on 2 CPUs)",
    )
    p.add_argument("--j-requests", type=int, default=30, help="(j) timed requests of each page (default 30)")
    p.add_argument(
        "--db-prefix",
        help="name the databases <prefix>_prefect / <prefix>_ours (dropped first if left over) "
        "instead of fresh bench_<stamp>_* names",
    )
    p.add_argument("--ports", help="port range LOW-HIGH for the servers (default: any free port)")
    p.add_argument("--pollers", type=int, help="(e) concurrent pollers (default 200; quick 50)")
    p.add_argument("--poll-seconds", type=float, help="(e) polling duration (default 20 s; quick 10)")
    p.add_argument(
        "--http-client",
        choices=("raw", "httpx"),
        default="raw",
        help="(c, e) the timed clients: a lean keep-alive client (default) or httpx",
    )
    p.add_argument(
        "--prefect-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for Prefect's server and its scheduler subprocess in (d) (repeatable)",
    )
    p.add_argument(
        "--our-workers",
        type=int,
        default=None,
        help="uvicorn --workers for our server (default: CPUs + 1, so a process waiting on the database "
        "leaves no core idle; 2 for (l), as the image's WEB_CONCURRENCY)",
    )
    p.add_argument(
        "--prefect-workers",
        type=int,
        default=1,
        help="prefect server --workers (default 1; >1 needs prefect-redis)",
    )
    p.add_argument(
        "--our-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for our server (repeatable), e.g. DATABASE_CONN_MAX_AGE=0",
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="REDIS_URL for our server")
    p.add_argument("--celery", action="store_true", help="also run a Celery worker for our server")
    p.add_argument(
        "--celery-broker-url",
        default=None,
        help="CELERY_BROKER_URL for our server (default with --celery: redis://127.0.0.1:6379/15, so it "
        "does not consume other processes' tasks)",
    )
    p.add_argument(
        "--celery-concurrency", type=int, default=1, help="the Celery worker's --concurrency (default 1)"
    )
    p.add_argument("--keep", action="store_true", help="keep the databases (processes are always stopped)")
    p.add_argument(
        "--reuse-databases",
        action="store_true",
        help="with --db-prefix: use the databases an earlier --keep run left as they are (implies --keep); "
        "(i) then times its requests without generating again",
    )
    args = p.parse_args(argv)
    args.only = {x.strip() for x in args.only.split(",") if x.strip()}
    if args.reuse_databases:
        if not args.db_prefix:
            p.error("--reuse-databases needs --db-prefix")
        args.keep = True
    args.servers = [x.strip() for x in args.servers.split(",") if x.strip()]
    if bad := args.only - set("abcdefghijklm"):
        p.error(f"unknown part(s): {', '.join(sorted(bad))}")
    if bad := set(args.servers) - {"prefect", "ours"}:
        p.error(f"unknown server(s): {', '.join(sorted(bad))}")
    q = args.quick
    args.runs = args.runs if args.runs is not None else (2 if q else 5)
    args.events = args.events if args.events is not None else (1500 if q else 20000)
    args.settle = args.settle if args.settle is not None else (20.0 if q else 60.0)
    args.flow_runs = args.flow_runs if args.flow_runs is not None else (64 if q else 800)
    args.deployments = args.deployments if args.deployments is not None else (1000 if q else 10000)
    args.f_runs = args.f_runs if args.f_runs is not None else (1 if q else 3)
    args.task_runs = args.task_runs if args.task_runs is not None else (64 if q else 800)
    args.loads = args.loads if args.loads is not None else (50 if q else 200)
    args.h_runs = args.h_runs if args.h_runs is not None else (1 if q else 3)
    if args.ports:
        try:
            low, high = (int(x) for x in args.ports.split("-", 1))
        except ValueError:
            p.error("--ports takes LOW-HIGH")
        args.ports = (low, high)
    args.pollers = args.pollers if args.pollers is not None else (50 if q else 200)
    args.poll_seconds = args.poll_seconds if args.poll_seconds is not None else (10.0 if q else 20.0)
    try:
        args.our_env = dict(item.split("=", 1) for item in args.our_env)
        args.prefect_env = dict(item.split("=", 1) for item in args.prefect_env)
    except ValueError:
        p.error("--our-env / --prefect-env take KEY=VALUE")
    # (k): our automations' actions run on a Celery worker and proactive windows on beat's clock.
    # (l): the deployed shape: 2 web processes, 2 Celery workers, beat, metrics summed over them.
    load = "l" in args.only
    args.celery_beat = "k" in args.only or load
    args.celery = args.celery or args.celery_beat
    if args.our_workers is None:
        args.our_workers = 2 if load else (os.cpu_count() or 1) + 1
    if args.celery_workers is None:
        args.celery_workers = 2 if load else 1
    if args.celery and not args.celery_broker_url:
        args.celery_broker_url = "redis://127.0.0.1:6379/15"
    return args


def machine_info() -> dict:
    info: dict = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    info["mem_total_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        info["postgres"] = servers.psql("SHOW server_version")
    except Exception:  # noqa: BLE001, S110
        pass
    try:
        import prefect

        info["prefect"] = prefect.__version__
    except Exception:  # noqa: BLE001, S110
        pass
    with contextlib.suppress(Exception):
        info["git_head"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=servers.ROOT, capture_output=True, text=True
        ).stdout.strip()
    return info


# --------------------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------------------


def _v(value, fmt: str = "{}") -> str:
    if value is None:
        return "-"
    return fmt.format(value)


def _ratio(p, o) -> str:
    if not isinstance(p, int | float) or not isinstance(o, int | float) or not p:
        return "-"
    return f"{o / p:.2f}x"


def table(results: dict, names: list[str]) -> str:
    rows: list[tuple[str, ...]] = []
    head = ("metric", *names, "ours/prefect")

    def add(label: str, values: dict, fmt: str = "{}", ratio: bool = True) -> None:
        cells = [_v(values.get(n), fmt) for n in names]
        ratio = _ratio(values.get("prefect"), values.get("ours")) if ratio and len(names) == 2 else ""
        rows.append((label, *cells, ratio))

    parts = results.get("parts", {})
    if "a" in parts:
        s = parts["a"].get("servers", {})
        add("(a) flow call median s", {n: s.get(n, {}).get("call_median_s") for n in names}, "{:.3f}")
        add("(a) process median s", {n: s.get(n, {}).get("proc_median_s") for n in names}, "{:.3f}")
        add("(a) runs ok / failed", {n: _okfail(s.get(n, {})) for n in names})
        add(
            "(a) task runs in DB / expected",
            {
                n: f"{s.get(n, {}).get('task_runs_in_db')}/{s.get(n, {}).get('task_runs_expected')}"
                for n in names
            },
        )
    if "b" in parts:
        s = parts["b"].get("servers", {})
        add("(b) events sent", {n: s.get(n, {}).get("sent") for n in names}, ratio=False)
        add("(b) send rate ev/s", {n: s.get(n, {}).get("send_rate_eps") for n in names}, "{:.0f}")
        add(
            "(b) all events in DB after s",
            {n: s.get(n, {}).get("events_persisted_s") for n in names},
            "{:.1f}",
        )
        add(
            "(b) all task runs COMPLETED after s",
            {n: s.get(n, {}).get("task_runs_completed_s") for n in names},
            "{:.1f}",
        )
        add("(b) end-to-end rate ev/s", {n: s.get(n, {}).get("e2e_rate_eps") for n in names}, "{:.0f}")
        add("(b) events lost", {n: s.get(n, {}).get("events_lost") for n in names}, ratio=False)
        add("(b) task runs lost / not completed", {n: _lost(s.get(n, {})) for n in names})
    if "c" in parts:
        s = parts["c"].get("servers", {})
        add("(c) set_state req/s", {n: s.get(n, {}).get("throughput_rps") for n in names}, "{:.0f}")
        add("(c) set_state p50 ms", {n: s.get(n, {}).get("p50_ms") for n in names}, "{:.1f}")
        add("(c) set_state p95 ms", {n: s.get(n, {}).get("p95_ms") for n in names}, "{:.1f}")
        add("(c) set_state p99 ms", {n: s.get(n, {}).get("p99_ms") for n in names}, "{:.1f}")
        add("(c) set_state ACCEPT / requests", {n: _acc(s.get(n, {})) for n in names})
        add(
            "(c) create flow_run req/s",
            {n: s.get(n, {}).get("create", {}).get("throughput_rps") for n in names},
            "{:.0f}",
        )
        add(
            "(c) create flow_run p50 ms",
            {n: s.get(n, {}).get("create", {}).get("p50_ms") for n in names},
            "{:.1f}",
        )
    if "d" in parts:
        s = parts["d"].get("servers", {})
        add(
            "(d) scheduled deployments",
            {n: s.get(n, {}).get("deployments_in_db") for n in names},
            ratio=False,
        )
        add(
            "(d) setup s (see README)", {n: s.get(n, {}).get("setup_s") for n in names}, "{:.1f}", ratio=False
        )
        add("(d) all runs ahead after s", {n: s.get(n, {}).get("runs_ahead_s") for n in names}, "{:.2f}")
        add("(d) runs created", {n: s.get(n, {}).get("runs_created") for n in names}, ratio=False)
        add("(d) runs created / s", {n: s.get(n, {}).get("runs_per_s") for n in names}, "{:.0f}")
        add("(d) idle tick s", {n: s.get(n, {}).get("tick2_s") for n in names}, "{:.3f}")
        add("(d) scheduler peak RSS MB", {n: s.get(n, {}).get("peak_rss_mb") for n in names}, "{:.0f}")
    if "e" in parts:
        s = parts["e"].get("servers", {})
        add("(e) pollers", {n: s.get(n, {}).get("pollers") for n in names}, ratio=False)
        add("(e) poll req/s", {n: s.get(n, {}).get("throughput_rps") for n in names}, "{:.0f}")
        add("(e) poll p50 ms", {n: s.get(n, {}).get("p50_ms") for n in names}, "{:.1f}")
        add("(e) poll p95 ms", {n: s.get(n, {}).get("p95_ms") for n in names}, "{:.1f}")
        add("(e) poll p99 ms", {n: s.get(n, {}).get("p99_ms") for n in names}, "{:.1f}")
        add("(e) poll 200 / requests", {n: _okreq(s.get(n, {})) for n in names})
        add(
            "(e) client CPU % (1 core = 100)",
            {n: s.get(n, {}).get("client_cpu_pct") for n in names},
            ratio=False,
        )
    if "f" in parts:
        s = parts["f"].get("servers", {})
        add(
            "(f) 100x10 subflows: call median s",
            {n: s.get(n, {}).get("call_median_s") for n in names},
            "{:.2f}",
        )
        add(
            "(f) call min-max s",
            {n: _range(s.get(n, {}).get("call_min_s"), s.get(n, {}).get("call_max_s")) for n in names},
            ratio=False,
        )
        add("(f) process median s", {n: s.get(n, {}).get("proc_median_s") for n in names}, "{:.2f}")
        add("(f) runs ok / failed", {n: _okfail(s.get(n, {})) for n in names})
        add(
            "(f) flow runs / task runs in DB (expected)",
            {
                n: f"{s.get(n, {}).get('flow_runs_in_db')}/{s.get(n, {}).get('task_runs_in_db')} "
                f"({s.get(n, {}).get('flow_runs_expected')}/{s.get(n, {}).get('task_runs_expected')})"
                for n in names
            },
        )
    if "g" in parts:
        s = parts["g"].get("servers", {})
        add("(g) task set_state req/s", {n: s.get(n, {}).get("throughput_rps") for n in names}, "{:.0f}")
        add("(g) task set_state p50 ms", {n: s.get(n, {}).get("p50_ms") for n in names}, "{:.1f}")
        add("(g) task set_state p95 ms", {n: s.get(n, {}).get("p95_ms") for n in names}, "{:.1f}")
        add("(g) task set_state p99 ms", {n: s.get(n, {}).get("p99_ms") for n in names}, "{:.1f}")
        add("(g) task set_state ACCEPT / requests", {n: _acc(s.get(n, {})) for n in names})
        add(
            "(g) create task_run req/s",
            {n: s.get(n, {}).get("create", {}).get("throughput_rps") for n in names},
            "{:.0f}",
        )
    if "h" in parts:
        s = parts["h"].get("servers", {})
        for what, label in (("load", "Secret.load"), ("read", "read alone")):
            for q in ("p50", "p95", "p99"):
                add(
                    f"(h) {label} {q} ms",
                    {n: s.get(n, {}).get(what, {}).get(f"{q}_ms") for n in names},
                    "{:.1f}",
                )
        add("(h) runs ok / failed", {n: _okfail(s.get(n, {})) for n in names})
    if "i" in parts:
        s = parts["i"].get("servers", {})
        add(
            f"(i) scale {parts['i'].get('scale')}: flow runs / task runs / events",
            {
                n: "/".join(
                    str(s.get(n, {}).get("generation", {}).get("rows", {}).get(k))
                    for k in ("flow_runs", "task_runs", "events")
                )
                for n in names
            },
            ratio=False,
        )
        add(
            "(i) generation s",
            {n: s.get(n, {}).get("generation", {}).get("total_s") for n in names},
            "{:.0f}",
            ratio=False,
        )
        labels = []
        for n in names:
            labels += [label for label in s.get(n, {}).get("requests", {}) if label not in labels]
        for label in labels:
            for q in ("p50", "p95"):
                add(
                    f"(i) {label} {q} ms",
                    {n: s.get(n, {}).get("requests", {}).get(label, {}).get(f"{q}_ms") for n in names},
                    "{:.1f}",
                )
        sweeps = []
        for n in names:
            sweeps += [
                label for label in s.get(n, {}).get("sweeps", {}) if label not in sweeps and label != "error"
            ]
        for label in sweeps:
            add(
                f"(i) sweep: {label}, ms per call",
                {
                    n: " / ".join(
                        f"{call[0] * 1000:.0f}" for call in s.get(n, {}).get("sweeps", {}).get(label, [])
                    )
                    or None
                    for n in names
                },
                ratio=False,
            )
    if "j" in parts:
        s = parts["j"].get("servers", {})
        labels = []
        for n in names:
            labels += [label for label in s.get(n, {}).get("requests", {}) if label not in labels]
        for label in labels:
            for q in ("p50", "p95"):
                add(
                    f"(j) {label} {q} ms",
                    {n: s.get(n, {}).get("requests", {}).get(label, {}).get(f"{q}_ms") for n in names},
                    "{:.1f}",
                    ratio=False,
                )
    if "k" in parts:
        s = parts["k"].get("servers", {})

        def kget(n, *path):
            v = s.get(n, {})
            for p in path:
                v = v.get(p, {}) if isinstance(v, dict) else {}
            return v if v != {} else None

        add(
            "(k) automations / workspaces",
            {n: f"{sum((kget(n, 'automations') or {}).values())}/{kget(n, 'workspaces')}" for n in names},
            ratio=False,
        )
        add(
            "(k) firings triggered / expected",
            {n: f"{kget(n, 'firings', 'triggered')}/{kget(n, 'firings', 'expected')}" for n in names},
            ratio=False,
        )
        add(
            "(k) firings missing / extra",
            {n: f"{kget(n, 'firings', 'missing')}/{kget(n, 'firings', 'extra')}" for n in names},
            ratio=False,
        )
        add("(k) actions executed", {n: kget(n, "firings", "actions_executed") for n in names}, ratio=False)
        add(
            "(k) trigger-to-action p50 ms",
            {n: kget(n, "latency_ms", "reactive_and_compound", "p50") for n in names},
            "{:.0f}",
        )
        add(
            "(k) trigger-to-action p95 ms",
            {n: kget(n, "latency_ms", "reactive_and_compound", "p95") for n in names},
            "{:.0f}",
        )
        for key, label in (
            ("send_to_triggered", "send to triggered"),
            ("triggered_to_executed", "triggered to executed"),
        ):
            add(
                f"(k) {label} p50 / p95 ms",
                {
                    n: (
                        None
                        if kget(n, "latency_ms", key, "p50") is None
                        else f"{kget(n, 'latency_ms', key, 'p50'):.0f} / {kget(n, 'latency_ms', key, 'p95'):.0f}"
                    )
                    for n in names
                },
                ratio=False,
            )
        add(
            "(k) proactive: action after window end p50 ms",
            {n: kget(n, "latency_ms", "proactive_after_window_end", "p50") for n in names},
            "{:.0f}",
        )
        for phase in ("baseline", "with_automations"):
            add(f"(k) {phase}: send ev/s", {n: kget(n, phase, "send_rate_eps") for n in names}, "{:.0f}")
            add(
                f"(k) {phase}: persisted ev/s",
                {n: kget(n, phase, "persisted_rate_eps") for n in names},
                "{:.0f}",
            )
            add(
                f"(k) {phase}: drain after last send s",
                {n: kget(n, phase, "drain_after_last_send_s") for n in names},
                "{:.1f}",
            )
            add(f"(k) {phase}: events lost", {n: kget(n, phase, "lost") for n in names}, ratio=False)
    if "l" in parts:
        s = parts["l"].get("servers", {})

        def lget(n, *path):
            v = s.get(n, {})
            for p in path:
                v = v.get(p, {}) if isinstance(v, dict) else {}
            return v if v != {} else None

        add(
            f"(l) {parts['l'].get('clients')} clients x {parts['l'].get('minutes')} min: parent runs ok / failed",
            {n: f"{lget(n, 'parent_runs_ok')}/{lget(n, 'parent_runs_failed')}" for n in names},
            ratio=False,
        )
        add(
            "(l) flow / task runs recorded by clients",
            {
                n: f"{lget(n, 'verify', 'flow_runs_recorded')}/{lget(n, 'verify', 'task_runs_recorded')}"
                for n in names
            },
            ratio=False,
        )
        add(
            "(l) runs lost (missing or not COMPLETED)",
            {n: lget(n, "verify", "lost") for n in names},
            ratio=False,
        )
        add("(l) 5xx responses", {n: lget(n, "metrics", "responses_5xx") for n in names}, ratio=False)
        add("(l) flow runs / min", {n: lget(n, "throughput", "flow_runs_per_min") for n in names}, "{:.0f}")
        add("(l) task runs / s", {n: lget(n, "throughput", "task_runs_per_s") for n in names}, "{:.1f}")
        add("(l) requests / s", {n: lget(n, "throughput", "requests_per_s") for n in names}, "{:.0f}")
        add("(l) parent flow call median s", {n: lget(n, "call_s_median") for n in names}, "{:.2f}")
        add(
            "(l) server RSS MB start -> end (all processes)",
            {n: _rss_total(lget(n, "memory") or {}) for n in names},
            ratio=False,
        )
    if "m" in parts:
        s = parts["m"].get("servers", {})

        def mget(n, *path):
            v = s.get(n, {})
            for p in path:
                v = v.get(p, {}) if isinstance(v, dict) else {}
            return v if v != {} else None

        for kind in ("flow_runs", "task_runs", "logs", "events", "artifacts"):
            add(
                f"(m) {kind}: rows before / after, MB before / after / vacuumed",
                {
                    n: f"{mget(n, 'before', kind, 'rows')}/{mget(n, 'after', kind, 'rows')}, "
                    f"{mget(n, 'before', kind, 'total_mb')}/{mget(n, 'after', kind, 'total_mb')}/"
                    f"{mget(n, 'after_vacuum', kind, 'total_mb')}"
                    for n in names
                },
                ratio=False,
            )
        add("(m) purge s", {n: mget(n, "purge", "duration_s") for n in names}, ratio=False)
        add(
            "(m) batches / longest batch s",
            {n: f"{mget(n, 'purge', 'batches')}/{mget(n, 'purge', 'longest_batch_s')}" for n in names},
            ratio=False,
        )
        for phase in ("baseline", "during_purge"):
            add(
                f"(m) writer {phase}: create flow run p50/p99/max ms",
                {
                    n: "/".join(
                        str(mget(n, "writer", phase, "create_flow_run", q))
                        for q in ("p50_ms", "p99_ms", "max_ms")
                    )
                    for n in names
                },
                ratio=False,
            )
        add(
            "(m) rows left exactly as retention keeps",
            {n: mget(n, "check", "exact") for n in names},
            ratio=False,
        )
    for key in "abcdefghijklm":
        if key in parts:
            s = parts[key].get("servers", {})
            add(
                f"({key}) peak PG connections (all: {parts[key].get('pg_connections', {}).get('peak', {}).get('total')})",
                {n: s.get(n, {}).get("pg_connections_peak") for n in names},
                ratio=False,
            )
            add(
                f"({key}) server log: errors / dropped msgs",
                {
                    n: f"{s.get(n, {}).get('server_log', {}).get('error_lines')}/"
                    f"{s.get(n, {}).get('server_log', {}).get('dropped_messages')}"
                    for n in names
                },
            )
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def _rss_total(memory: dict):
    if not memory:
        return None
    return f"{sum(r['start_mb'] for r in memory.values()):.0f} -> {sum(r['end_mb'] for r in memory.values()):.0f}"


def _okfail(s: dict):
    return None if not s else f"{s.get('ok')}/{s.get('failed')}"


def _range(low, high):
    return None if low is None else f"{low:.2f}-{high:.2f}"


def _lost(s: dict):
    if not s or s.get("task_runs_lost") is None:
        return None
    return f"{s['task_runs_lost']}/{s['task_runs_not_completed']}"


def _okreq(s: dict):
    return None if not s or "requests" not in s else f"{s['ok']}/{s['requests']}"


def _acc(s: dict):
    return None if not s or "requests" not in s else f"{s['accepted']}/{s['requests']}"


def errors_summary(results: dict) -> list[str]:
    out = []
    for part, res in results.get("parts", {}).items():
        if "error" in res:
            out.append(f"({part}) {res['error']}")
        for name, s in res.get("servers", {}).items():
            if s.get("error"):
                out.append(f"({part}) {name}: {s['error']}")
            if s.get("first_error"):
                fe = s["first_error"]
                out.append(f"({part}) {name}: {fe if isinstance(fe, str) else fe.get('error')}")
            for e in s.get("first_errors", [])[:1]:
                out.append(f"({part}) {name}: {e}")
            for e in s.get("send_errors", [])[:1]:
                out.append(f"({part}) {name}: send error {e}")
            digest = s.get("server_log") or {}
            if digest.get("dropped_messages"):
                out.append(
                    f"({part}) {name}: server log: {digest['dropped_messages']} 'dropping message' warnings"
                )
            for line, count in digest.get("top_errors", [])[:2]:
                out.append(f"({part}) {name}: server log ERROR x{count}: {line}")
            for line, count in digest.get("top_exceptions", [])[:2]:
                out.append(f"({part}) {name}: server log x{count}: {line}")
    for name, err in results.get("startup_errors", {}).items():
        out.append(f"(startup) {name}: {err}")
    return out


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = stamp.replace("-", "_") + f"_{os.getpid()}"
    results_dir = BENCH / "results"
    workdir = results_dir / f"{stamp}-work"
    workdir.mkdir(parents=True, exist_ok=True)
    out_path = results_dir / f"{stamp}.json"
    results: dict = {
        "started": stamp,
        "machine": machine_info(),
        "config": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
        "servers": {},
        "parts": {},
        "startup_errors": {},
    }
    log(f"machine: {results['machine'].get('nproc')} CPUs, {results['machine'].get('mem_total_gb')} GB RAM")
    servers.install_signal_handlers()
    servers.DB_PREFIX = args.db_prefix
    servers.REUSE_DATABASES = args.reuse_databases
    servers.PORT_RANGE = args.ports
    targets = []
    interrupted = False
    try:
        if "prefect" in args.servers:
            try:
                prefect_env = dict(args.prefect_env)
                if "d" in args.only and args.prefect_scheduler == "process":
                    # (d) runs Prefect's scheduler function in its own process; the in-server copy
                    # would race it.
                    prefect_env.setdefault("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED", "false")
                elif "d" in args.only:
                    prefect_env.setdefault("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS", "5")
                if "i" in args.only:
                    # (i) loads millions of rows with the secondary indexes dropped: Prefect's
                    # sweeps would scan the half-loaded tables row by row meanwhile (its
                    # cancellation clean-up, one task-run query per cancelled run), and its event
                    # vacuum would delete the generated events older than 7 days. Our server runs
                    # no sweeps in (i) either (no beat).
                    for service in I_PREFECT_SERVICES_OFF:
                        prefect_env.setdefault(f"PREFECT_SERVER_SERVICES_{service}_ENABLED", "false")
                    prefect_env.setdefault("PREFECT_SERVER_EVENTS_RETENTION_PERIOD", "P400D")
                targets.append(
                    servers.start_prefect(tag, workdir, workers=args.prefect_workers, extra_env=prefect_env)
                )
            except Exception as exc:
                results["startup_errors"]["prefect"] = str(exc)[-3000:]
                log(f"Prefect server failed to start: {exc}")
        if "ours" in args.servers:
            try:
                targets.append(
                    servers.start_ours(
                        tag,
                        workdir,
                        workers=args.our_workers,
                        extra_env=args.our_env,
                        redis_url=args.redis_url,
                        celery=args.celery,
                        celery_broker_url=args.celery_broker_url,
                        celery_beat=args.celery_beat,
                        celery_concurrency=args.celery_concurrency,
                        celery_workers=args.celery_workers,
                        multiproc_dir=workdir / "prometheus-multiproc" if "l" in args.only else None,
                        http_protocol="core.serving:HttpProtocol" if "l" in args.only else None,
                    )
                )
            except Exception as exc:
                results["startup_errors"]["ours"] = str(exc)[-3000:]
                log(f"our server failed to start: {exc}")
        for t in targets:
            results["servers"][t.name] = {"api_url": t.api_url, "db": t.db, **t.info}
        names = [t.name for t in targets]
        if not targets:
            raise RuntimeError("no server started")

        def part(key: str, fn, *a, **kw) -> None:
            if key not in args.only:
                return
            log(f"=== part ({key}) === (load average {os.getloadavg()[0]:.2f})")
            load_before = os.getloadavg()
            offsets = {t.name: servers.log_size(t.info["log"]) for t in targets}
            t0 = time.perf_counter()
            sampler = servers.ConnectionSampler({t.db: t.name for t in targets})
            try:
                with sampler:
                    results["parts"][key] = fn(*a, **kw)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                traceback.print_exc()
                results["parts"][key] = {"error": f"{type(exc).__name__}: {exc}"}
            results["parts"][key]["pg_connections"] = sampler.result()
            results["parts"][key]["duration_s"] = round(time.perf_counter() - t0, 1)
            # Other work on the machine skews every number: keep the load next to them.
            results["parts"][key]["loadavg_before"] = [round(x, 2) for x in load_before]
            results["parts"][key]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            for t in targets:
                digest = servers.log_digest(t.info["log"], offsets[t.name])
                srv = results["parts"][key].setdefault("servers", {}).setdefault(t.name, {})
                srv["server_log"] = digest
                srv["pg_connections_peak"] = sampler.peaks.get(t.name)
            out_path.write_text(json.dumps(results, indent=2, default=str))

        part("a", part_a.run, targets, workdir, runs=args.runs, n_tasks=args.tasks)
        part(
            "b",
            part_b.run,
            targets,
            n_events=args.events,
            connections=args.connections,
            settle=args.settle,
            max_wait=args.max_wait,
        )
        part(
            "c", part_c.run, targets, clients=args.clients, flow_runs=args.flow_runs, client=args.http_client
        )
        # (e) before (d): (e) creates its deployments over HTTP, within our plan's deployment limit,
        # which (d)'s thousands of ORM-made deployments would exhaust.
        part(
            "e",
            part_e.run,
            targets,
            pollers=args.pollers,
            duration=args.poll_seconds,
            client=args.http_client,
        )
        part(
            "d",
            part_d.run,
            targets,
            deployments=args.deployments,
            over_http=args.deployments_over_http,
            prefect_scheduler=args.prefect_scheduler,
        )
        part(
            "f",
            part_f.run,
            targets,
            workdir,
            runs=args.f_runs,
            subflows=args.subflows,
            tasks=args.subflow_tasks,
            warmup=args.f_warmup,
        )
        part(
            "g", part_g.run, targets, clients=args.clients, task_runs=args.task_runs, client=args.http_client
        )
        part("h", part_h.run, targets, workdir, runs=args.h_runs, loads=args.loads)
        part("i", part_i.run, targets, scale=args.i_scale, repeat=args.i_requests, reuse=args.reuse_databases)
        part("j", part_j.run, targets, scale=args.j_scale, repeat=args.j_requests)
        part(
            "k",
            part_k.run,
            targets,
            rate=args.k_rate,
            seconds=args.k_seconds,
            n_automations=args.k_automations,
            workspaces=args.k_workspaces,
            connections=args.connections,
        )
        part(
            "l",
            part_l.run,
            targets,
            workdir,
            clients=args.l_clients,
            minutes=args.l_minutes,
            subflows=args.l_subflows,
            tasks=args.l_tasks,
            concurrent=args.l_concurrent,
            sample_seconds=args.l_sample_seconds,
            settle=args.settle,
        )
        part("m", part_m.run, targets, scale=args.m_scale, baseline=args.m_baseline)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted; cleaning up")
    finally:
        results["interrupted"] = interrupted
        results["finished"] = time.strftime("%Y%m%d-%H%M%S")
        servers.cleanup(keep_databases=args.keep)
        out_path.write_text(json.dumps(results, indent=2, default=str))
    names = [t.name for t in targets]
    if names:
        print()
        print(
            f"machine: nproc={results['machine'].get('nproc')} RAM={results['machine'].get('mem_total_gb')} GB; "
            + "; ".join(f"{n}: workers={results['servers'][n].get('workers')}" for n in names)
        )
        print(table(results, names))
    errs = errors_summary(results)
    if errs:
        print("\nerrors:")
        for e in errs:
            print("  " + e[:1500])
    print(f"\nresults: {out_path}\nlogs:    {workdir / 'logs'}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
