"""Part (a): the 40-sequential-task flow with the real client, a fresh process per run,
interleaved between the servers."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

from servers import PY, REGISTRY, Target, clean_env, log, psql, stop_process

FLOW = Path(__file__).resolve().parent / "flow.py"
TIMEOUT = 180.0


def run_flow_once(
    target: Target,
    home: Path,
    n_tasks: int,
    log_path: Path,
    *,
    script: Path = FLOW,
    args: tuple[str, ...] | None = None,
    timeout: float = TIMEOUT,
) -> dict:
    """Run ``script`` (default: the 40-task flow) in a fresh client process; its BENCH_RESULT line."""
    env = clean_env(PREFECT_HOME=str(home), **target.client_env)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [PY, str(script), *(args if args is not None else (str(n_tasks),))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    REGISTRY.processes.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    finally:
        stop_process(proc, grace=2.0)  # also on Ctrl-C: never leave a flow process behind
    wall = time.perf_counter() - t0
    with open(log_path, "a") as fh:
        fh.write(f"===== {target.name} rc={proc.returncode} wall={wall:.3f}\n{out}\n{err}\n")
    row: dict = {"proc_s": round(wall, 4), "rc": proc.returncode}
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            row.update(json.loads(line.removeprefix("BENCH_RESULT ")))
    if proc.returncode != 0 or "call_s" not in row:
        row["error"] = (err.strip().splitlines() or ["(no stderr)"])[-1][:500]
        row["stderr_tail"] = err[-3000:]
    return row


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def run(targets: list[Target], workdir: Path, *, runs: int, n_tasks: int = 40, warmup: int = 1) -> dict:
    log_path = workdir / "logs" / "part_a_flows.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    homes = {}
    for t in targets:
        homes[t.name] = workdir / f"client-home-{t.name}"
        homes[t.name].mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {t.name: [] for t in targets}
    warm: dict[str, list[dict]] = {t.name: [] for t in targets}
    for _ in range(warmup):
        for t in targets:
            r = run_flow_once(t, homes[t.name], n_tasks, log_path)
            warm[t.name].append(r)
            log(f"(a) warm-up {t.name}: {_fmt(r)}")
    for i in range(runs):
        order = targets if i % 2 == 0 else list(reversed(targets))
        for t in order:
            r = run_flow_once(t, homes[t.name], n_tasks, log_path)
            rows[t.name].append(r)
            log(f"(a) run {i + 1}/{runs} {t.name}: {_fmt(r)}")
    result: dict = {"runs": runs, "warmup": warmup, "n_tasks": n_tasks, "servers": {}}
    for t in targets:
        ok = [r for r in rows[t.name] if r.get("rc") == 0 and "call_s" in r]
        errors = [r for r in rows[t.name] + warm[t.name] if r.get("rc") != 0 or "call_s" not in r]
        res = {
            "ok": len(ok),
            "failed": len(rows[t.name]) - len(ok),
            "call_median_s": _median([r["call_s"] for r in ok]),
            "proc_median_s": _median([r["proc_s"] for r in ok]),
            "import_median_s": _median([r["import_s"] for r in ok]),
            "call_s": [r.get("call_s") for r in rows[t.name]],
            "proc_s": [r.get("proc_s") for r in rows[t.name]],
            "warmup": warm[t.name],
        }
        if errors:
            res["first_error"] = {k: errors[0].get(k) for k in ("rc", "error", "stderr_tail")}
        # Sanity: task runs the server recorded for this flow (the client reports them as events).
        expected = (len(rows[t.name]) + len(warm[t.name])) * n_tasks
        res["task_runs_expected"] = expected
        res["task_runs_in_db"] = _count_task_runs(t, expected)
        result["servers"][t.name] = res
    names = [t.name for t in targets]
    if "prefect" in names and "ours" in names:
        p, o = result["servers"]["prefect"], result["servers"]["ours"]
        for key in ("call_median_s", "proc_median_s"):
            if p[key] and o[key]:
                result[f"ratio_ours_over_prefect_{key}"] = round(o[key] / p[key], 3)
    return result


def _count_task_runs(t: Target, expected: int, wait: float = 15.0) -> int | None:
    """Task runs in the server's table, waiting up to ``wait`` s for its recorder to catch up."""
    deadline = time.monotonic() + wait
    count = None
    while True:
        try:
            count = int(psql(f"SELECT count(*) FROM {t.task_run_table}", db=t.db))  # noqa: S608
        except Exception:  # noqa: BLE001
            return None
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.5)


def _fmt(r: dict) -> str:
    if "error" in r:
        return f"FAILED rc={r.get('rc')} {r['error']}"
    return f"call {r['call_s']:.3f}s proc {r['proc_s']:.3f}s state {r.get('state')}"
