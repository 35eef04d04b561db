"""Part (l): load and soak with real ``prefect`` client processes.

For each server in turn (one at a time: the clients share the cores with it), ``clients`` processes
of ``bench/load_client.py`` (the unmodified client) loop a flow with subflows and task runs for
``minutes``, each recording every flow run and task run id it saw. Meanwhile the RSS of every
server process (for ours: the uvicorn master and its workers, each Celery worker's master and pool
processes, beat; for Prefect: its server's process group) is sampled at the start, every
``sample_seconds`` and at the end. Then:

- every recorded flow run and task run (and each subflow's parent task run) is looked up in the
  server's PostgreSQL until all exist in a terminal COMPLETED state or nothing changes for
  ``settle`` seconds: what is missing or not COMPLETED is *lost*;
- ours: ``/metrics`` is scraped before the clients start and after they end; the difference gives
  the responses by status (the 5xx count) and per route template the request count and
  p50/p95/p99 latency, interpolated linearly inside the histogram's buckets (so a figure is only as
  fine as the buckets: 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5, 10, 30 s);
- throughput: parent flow runs and all flow runs per minute, task runs per second, requests per
  second (ours, from ``/metrics``), over the clients' window;
- memory: per process the series, start and end RSS, end/start, and the least-squares slope in MB
  per hour over the samples after the first minute (the first minute is warm-up: imports, caches
  and pools fill as the first requests arrive), so a flat process reads ~0 MB/h.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
from prometheus_client.parser import text_string_to_metric_families
from servers import PY, REGISTRY, Target, clean_env, dsn, log, log_digest, log_size, stop_process

CLIENT = Path(__file__).resolve().parent / "load_client.py"
TABLES = {
    "prefect": ("flow_run", "task_run"),
    "ours": ("orchestration_flowrun", "orchestration_taskrun"),
}
WARMUP_S = 60.0


# --------------------------------------------------------------------------------------------------
# Memory of every server process
# --------------------------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; the ppid follows the state.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _role(proc: subprocess.Popen) -> str:
    argv = [str(a) for a in proc.args]
    if "uvicorn" in argv:
        return "web"
    if "beat" in argv:
        return "beat"
    if "worker" in argv:
        name = argv[argv.index("-n") + 1].split("@", 1)[0] if "-n" in argv else "worker"
        return f"celery {name}"
    return "server"


class MemorySampler:
    """RSS of each server process (each process group leader and all its descendants), by label
    ``<role> <pid>`` (``<role> child <pid>`` for a descendant), every ``every`` seconds."""

    def __init__(self, target: Target, every: float):
        self.leaders = [(p.pid, _role(p)) for p in target.procs]
        self.every = every
        self.t0 = time.monotonic()
        self.series: dict[str, list[tuple[float, float]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        now = round(time.monotonic() - self.t0, 1)
        children = _children_map()
        for leader, role in self.leaders:
            stack = [(leader, f"{role} {leader}")]
            while stack:
                pid, label = stack.pop()
                rss = _rss_mb(pid)
                if rss is not None:
                    self.series.setdefault(label, []).append((now, round(rss, 1)))
                for c in children.get(pid, []):
                    # multiprocessing's helper next to uvicorn's workers is not a server process.
                    kind = "tracker" if "resource_tracker" in _cmdline(c) else "child"
                    stack.append((c, f"{role} {kind} {c}"))

    def wait_settled(self, quiet: float = 10.0, limit: float = 180.0) -> float:
        """Wait until no server process's RSS moved more than 2 % for ``quiet`` s (every process
        has imported what it imports at start: Celery and beat load Django after the web answers),
        so the start sample is the idle stack, not a half-started one."""
        t0 = time.monotonic()
        last: dict[str, float] = {}
        stable_since = t0
        while time.monotonic() - t0 < limit:
            self.series = {}
            self.sample()
            now = {label: pts[-1][1] for label, pts in self.series.items()}
            if now.keys() != last.keys() or any(abs(now[k] - last[k]) > 0.02 * last[k] for k in now):
                stable_since = time.monotonic()
            elif time.monotonic() - stable_since >= quiet:
                break
            last = now
            time.sleep(1.0)
        self.series = {}
        self.t0 = time.monotonic()
        return round(time.monotonic() - t0, 1)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample()

    def result(self) -> dict:
        out: dict = {}
        for label, points in self.series.items():
            start, end = points[0][1], points[-1][1]
            row: dict = {
                "start_mb": start,
                "end_mb": end,
                "end_over_start": round(end / start, 3) if start else None,
                "series": points,
            }
            settled = [p for p in points if p[0] >= WARMUP_S]
            if len(settled) >= 3 and settled[-1][0] > settled[0][0]:
                row["after_warmup_mb"] = settled[0][1]
                row["slope_mb_per_h"] = round(_slope(settled) * 3600, 1)
                row["end_over_after_warmup"] = round(end / settled[0][1], 3) if settled[0][1] else None
            out[label] = row
        return out


def _slope(points: list[tuple[float, float]]) -> float:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


# --------------------------------------------------------------------------------------------------
# /metrics
# --------------------------------------------------------------------------------------------------


def scrape(url: str) -> dict:
    """The request counters and latency buckets of our ``/metrics``, keyed by their labels."""
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - our own local server
        text = resp.read().decode()
    responses: dict[tuple[str, str, str], float] = {}
    buckets: dict[tuple[str, str], dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "controlplane_http_responses_total":
                key = (s.labels["method"], s.labels["route"], s.labels["status"])
                responses[key] = responses.get(key, 0.0) + s.value
            elif s.name == "controlplane_http_request_duration_seconds_bucket":
                key = (s.labels["method"], s.labels["route"])
                le = float(s.labels["le"])
                buckets.setdefault(key, {})[le] = buckets.get(key, {}).get(le, 0.0) + s.value
    return {"responses": responses, "buckets": buckets}


def _bucket_quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket holding the rank; above the last
    finite bound, that bound."""
    total = cumulative[-1][1] if cumulative else 0
    if not total:
        return None
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


def metrics_delta(before: dict, after: dict) -> dict:
    statuses: dict[str, int] = {}
    by_route: dict[str, dict] = {}
    for (method, route, status), value in after["responses"].items():
        n = int(value - before["responses"].get((method, route, status), 0.0))
        if n <= 0:
            continue
        statuses[status] = statuses.get(status, 0) + n
        row = by_route.setdefault(f"{method} {_short(route)}", {"requests": 0, "statuses": {}})
        row["requests"] += n
        row["statuses"][status] = row["statuses"].get(status, 0) + n
    for (method, route), les in after["buckets"].items():
        old = before["buckets"].get((method, route), {})
        cumulative = sorted((le, les[le] - old.get(le, 0.0)) for le in les)
        if not cumulative or cumulative[-1][1] <= 0:
            continue
        row = by_route.setdefault(f"{method} {_short(route)}", {"requests": 0, "statuses": {}})
        for name, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            v = _bucket_quantile(cumulative, q)
            row[name] = None if v is None else round(v * 1000, 1)
    return {
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "responses_5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "routes": dict(sorted(by_route.items(), key=lambda kv: -kv[1]["requests"])),
    }


def _short(route: str) -> str:
    marker = "workspaces/<str:workspace_ref>/"
    return "…/" + route.split(marker, 1)[1] if marker in route else route


# --------------------------------------------------------------------------------------------------
# What the clients recorded, against the database
# --------------------------------------------------------------------------------------------------


def _read_rows(files: list[Path]) -> list[dict]:
    rows = []
    for path in files:
        with contextlib.suppress(OSError), open(path) as fh:
            for line in fh:
                with contextlib.suppress(json.JSONDecodeError):
                    rows.append(json.loads(line))
    return rows


def _states(conn, table: str, ids: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for i in range(0, len(ids), 5000):
        chunk = ids[i : i + 5000]
        for rid, state in conn.execute(
            f"SELECT id::text, state_type FROM {table} WHERE id = ANY(%s::uuid[])",  # noqa: S608
            (chunk,),
        ):
            out[rid] = state
    return out


def verify(t: Target, rows: list[dict], settle: float, max_wait: float) -> dict:
    """Wait until every recorded run is COMPLETED on the server, or nothing changes for ``settle`` s."""
    flow_table, task_table = TABLES[t.name]
    flow_ids, task_ids, subflow_ids = [], [], []
    for r in rows:
        if "error" in r:
            continue
        flow_ids.append(r["flow_run_id"])
        subflow_ids += r["subflows"]
        task_ids += r["task_runs"]
    flow_ids += subflow_ids
    t0 = time.monotonic()
    last_change, last_done = t0, -1
    with psycopg.connect(dsn(t.db), autocommit=True) as conn:
        while True:
            flows = _states(conn, flow_table, flow_ids)
            tasks = _states(conn, task_table, task_ids)
            parents = {
                rid: ptr
                for rid, ptr in conn.execute(
                    f"SELECT id::text, parent_task_run_id::text FROM {flow_table} WHERE id = ANY(%s::uuid[])",  # noqa: S608
                    (subflow_ids,),
                )
            }
            parent_ids = [p for p in parents.values() if p]
            parent_states = _states(conn, task_table, parent_ids)
            done = (
                sum(s == "COMPLETED" for s in flows.values())
                + sum(s == "COMPLETED" for s in tasks.values())
                + sum(s == "COMPLETED" for s in parent_states.values())
            )
            target = len(flow_ids) + len(task_ids) + len(subflow_ids)
            now = time.monotonic()
            if done != last_done:
                last_change, last_done = now, done
            if done >= target or now - last_change > settle or now - t0 > max_wait:
                break
            time.sleep(2.0)
    not_completed: dict[str, int] = {}
    for states in (flows, tasks, parent_states):
        for s in states.values():
            if s != "COMPLETED":
                not_completed[str(s)] = not_completed.get(str(s), 0) + 1
    missing_flows = [i for i in flow_ids if i not in flows]
    missing_tasks = [i for i in task_ids if i not in tasks]
    subflows_without_parent = [i for i in subflow_ids if not parents.get(i)]
    missing_parent_tasks = [p for p in parent_ids if p not in parent_states]
    return {
        "flow_runs_recorded": len(flow_ids),
        "task_runs_recorded": len(task_ids) + len(subflow_ids),
        "flow_runs_missing": len(missing_flows),
        "task_runs_missing": len(missing_tasks) + len(missing_parent_tasks) + len(subflows_without_parent),
        "not_completed_by_state": not_completed,
        "lost": len(missing_flows)
        + len(missing_tasks)
        + len(missing_parent_tasks)
        + len(subflows_without_parent)
        + sum(not_completed.values()),
        "examples_missing": (missing_flows + missing_tasks + missing_parent_tasks)[:5],
        "verify_s": round(time.monotonic() - t0, 1),
    }


# --------------------------------------------------------------------------------------------------


def run_one(
    t: Target,
    workdir: Path,
    *,
    clients: int,
    minutes: float,
    subflows: int,
    tasks: int,
    concurrent: int,
    sample_seconds: float,
    settle: float,
) -> dict:
    out_dir = workdir / f"load-{t.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_url = f"{t.info['public_url']}/metrics" if t.name == "ours" else None
    before = scrape(metrics_url) if metrics_url else None
    other_logs = sorted((workdir / "logs").glob("ours-celery*.log")) if t.name == "ours" else []
    offsets = {p: log_size(p) for p in other_logs}
    window_s = minutes * 60
    files = [out_dir / f"client-{i}.jsonl" for i in range(clients)]
    procs: list[subprocess.Popen] = []
    memory = MemorySampler(t, sample_seconds)
    log(f"(l) {t.name}: server processes settled after {memory.wait_settled()} s")
    with memory:
        start = time.time()
        deadline = start + window_s
        log(f"(l) {t.name}: {clients} client processes for {minutes:g} min")
        for i, path in enumerate(files):
            home = out_dir / f"home-{i}"
            home.mkdir(exist_ok=True)
            env = clean_env(PREFECT_HOME=str(home), **t.client_env)
            err = open(out_dir / f"client-{i}.log", "ab")  # noqa: SIM115 - closed below
            argv = [PY, str(CLIENT), str(path), str(deadline), str(subflows), str(tasks), str(concurrent)]
            proc = subprocess.Popen(
                argv, env=env, stdout=err, stderr=subprocess.STDOUT, start_new_session=True
            )
            err.close()
            REGISTRY.processes.append(proc)
            procs.append(proc)
        rcs: list[int | None] = []
        try:
            next_note = time.monotonic() + 60
            while any(p.poll() is None for p in procs):
                if time.time() > deadline + 600:
                    log(f"(l) {t.name}: clients still running 10 min past the window; stopping them")
                    break
                if time.monotonic() > next_note:
                    next_note += 60
                    done = len(_read_rows(files))
                    log(
                        f"(l) {t.name}: {done} parent flow runs so far (load average {os.getloadavg()[0]:.2f})"
                    )
                time.sleep(1.0)
        finally:
            for p in procs:
                rcs.append(p.poll())
                stop_process(p, grace=5.0)
        clients_end = time.time()
    rows = _read_rows(files)
    ok = [r for r in rows if "error" not in r]
    failed = [r for r in rows if "error" in r]
    log(f"(l) {t.name}: clients done, {len(ok)} parent runs completed, {len(failed)} failed; verifying")
    result: dict = {
        "clients": clients,
        "minutes": minutes,
        "window_s": round(clients_end - start, 1),
        "client_exit_codes": {str(k): rcs.count(k) for k in sorted(set(rcs), key=str)},
        "parent_runs_ok": len(ok),
        "parent_runs_failed": len(failed),
        "call_s_median": round(statistics.median([r["call_s"] for r in ok]), 3) if ok else None,
        "call_s_p95": round(_pct([r["call_s"] for r in ok], 0.95), 3) if ok else None,
    }
    if failed:
        result["first_failures"] = [
            {k: f.get(k) for k in ("error", "traceback", "flow_run_id")} for f in failed[:3]
        ]
    result["verify"] = verify(t, rows, settle=settle, max_wait=max(settle * 5, 300.0))
    flows_done = len(ok) * (1 + subflows)
    tasks_done = len(ok) * (subflows * (tasks + 1) + concurrent)
    # Throughput over the clients' window, measured from the first client start.
    span = result["window_s"]
    result["throughput"] = {
        "parent_flow_runs_per_min": round(len(ok) / span * 60, 1),
        "flow_runs_per_min": round(flows_done / span * 60, 1),
        "task_runs_per_s": round(tasks_done / span, 2),
    }
    if metrics_url and before is not None:
        with contextlib.suppress(Exception):
            delta = metrics_delta(before, scrape(metrics_url))
            result["metrics"] = delta
            result["throughput"]["requests_per_s"] = round(delta["requests"] / span, 1)
    result["memory"] = memory.result()
    result["other_logs"] = {p.name: log_digest(p, offsets[p]) for p in other_logs}
    _report(t.name, result)
    return result


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _report(name: str, r: dict) -> None:
    v = r["verify"]
    log(
        f"(l) {name}: {r['parent_runs_ok']} parent runs ok / {r['parent_runs_failed']} failed in "
        f"{r['window_s']:.0f} s; recorded {v['flow_runs_recorded']} flow runs, {v['task_runs_recorded']} "
        f"task runs; lost {v['lost']} (missing {v['flow_runs_missing']} flow / {v['task_runs_missing']} "
        f"task, not COMPLETED {v['not_completed_by_state']})"
    )
    log(f"(l) {name}: throughput {r['throughput']}")
    m = r.get("metrics")
    if m:
        log(f"(l) {name}: {m['requests']} requests, statuses {m['statuses']}, 5xx {m['responses_5xx']}")
        log("(l) latency per route (interpolated in histogram buckets): requests  p50 / p95 / p99 ms")
        for route, row in m["routes"].items():
            log(
                f"    {row['requests']:>8}  {row.get('p50_ms')} / {row.get('p95_ms')} / {row.get('p99_ms')}"
                f"  {route}  {row['statuses']}"
            )
    log("(l) memory RSS MB: start -> end (end/start; after warm-up: MB, slope MB/h)")
    for label, row in r["memory"].items():
        log(
            f"    {label:<28} {row['start_mb']:>7} -> {row['end_mb']:>7} ({row['end_over_start']}; "
            f"{row.get('after_warmup_mb')}, {row.get('slope_mb_per_h')} MB/h)"
        )
        log("        series: " + " ".join(f"{int(ts)}s:{mb:.0f}" for ts, mb in row["series"]))


def run(
    targets: list[Target],
    workdir: Path,
    *,
    clients: int = 50,
    minutes: float = 10.0,
    subflows: int = 2,
    tasks: int = 3,
    concurrent: int = 4,
    sample_seconds: float = 60.0,
    settle: float = 60.0,
) -> dict:
    result: dict = {
        "clients": clients,
        "minutes": minutes,
        "flow": {"subflows": subflows, "tasks_per_subflow": tasks, "submitted_tasks": concurrent},
        "servers": {},
    }
    # Ours first; one server at a time, since the client processes share the cores with it.
    for t in sorted(targets, key=lambda t: t.name != "ours"):
        result["servers"][t.name] = run_one(
            t,
            workdir,
            clients=clients,
            minutes=minutes,
            subflows=subflows,
            tasks=tasks,
            concurrent=concurrent,
            sample_seconds=sample_seconds,
            settle=settle,
        )
    return result
