"""Part (f): a flow that calls 100 subflows of 10 tasks each, with the real client, a fresh
process per run, interleaved between the servers (as part (a))."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from part_a import run_flow_once
from servers import Target, log, psql

FLOW = Path(__file__).resolve().parent / "flow_subflows.py"
TIMEOUT = 900.0
FLOW_RUN_TABLE = {"prefect": "flow_run", "ours": "orchestration_flowrun"}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def _fmt(r: dict) -> str:
    if "error" in r:
        return f"FAILED rc={r.get('rc')} {r['error']}"
    return f"call {r['call_s']:.3f}s proc {r['proc_s']:.3f}s state {r.get('state')}"


def _count(t: Target, table: str, expected: int, wait: float = 20.0) -> int | None:
    """Rows in the server's ``table``, waiting up to ``wait`` s for its recorder to catch up."""
    deadline = time.monotonic() + wait
    while True:
        try:
            count = int(psql(f"SELECT count(*) FROM {table}", db=t.db))  # noqa: S608
        except Exception:  # noqa: BLE001
            return None
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.5)


def run(
    targets: list[Target], workdir: Path, *, runs: int, subflows: int = 100, tasks: int = 10, warmup: int = 0
) -> dict:
    log_path = workdir / "logs" / "part_f_flows.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    homes = {}
    for t in targets:
        homes[t.name] = workdir / f"client-home-f-{t.name}"
        homes[t.name].mkdir(parents=True, exist_ok=True)
    args = (str(subflows), str(tasks))
    before: dict[str, dict[str, int | None]] = {}
    for t in targets:
        before[t.name] = {
            "flow_runs": _count(t, FLOW_RUN_TABLE[t.name], 0, wait=0),
            "task_runs": _count(t, t.task_run_table, 0, wait=0),
        }
    rows: dict[str, list[dict]] = {t.name: [] for t in targets}
    warm: dict[str, list[dict]] = {t.name: [] for t in targets}

    def once(t: Target) -> dict:
        return run_flow_once(t, homes[t.name], 0, log_path, script=FLOW, args=args, timeout=TIMEOUT)

    for _ in range(warmup):
        for t in targets:
            r = once(t)
            warm[t.name].append(r)
            log(f"(f) warm-up {t.name}: {_fmt(r)}")
    for i in range(runs):
        order = targets if i % 2 == 0 else list(reversed(targets))
        for t in order:
            r = once(t)
            rows[t.name].append(r)
            log(f"(f) run {i + 1}/{runs} {t.name}: {_fmt(r)}")
    result: dict = {"runs": runs, "warmup": warmup, "subflows": subflows, "tasks": tasks, "servers": {}}
    for t in targets:
        ok = [r for r in rows[t.name] if r.get("rc") == 0 and "call_s" in r]
        errors = [r for r in rows[t.name] + warm[t.name] if r.get("rc") != 0 or "call_s" not in r]
        res: dict = {
            "ok": len(ok),
            "failed": len(rows[t.name]) - len(ok),
            "call_median_s": _median([r["call_s"] for r in ok]),
            "call_min_s": min((r["call_s"] for r in ok), default=None),
            "call_max_s": max((r["call_s"] for r in ok), default=None),
            "proc_median_s": _median([r["proc_s"] for r in ok]),
            "call_s": [r.get("call_s") for r in rows[t.name]],
            "proc_s": [r.get("proc_s") for r in rows[t.name]],
            "warmup": warm[t.name],
        }
        if errors:
            res["first_error"] = {k: errors[0].get(k) for k in ("rc", "error", "stderr_tail")}
        # Sanity: what the server recorded. Per parent run: 1 + N flow runs; N x M task runs plus
        # the N task runs that stand for the subflow calls in the parent.
        n_flows = len(rows[t.name]) + len(warm[t.name])
        exp_flow_runs = n_flows * (1 + subflows)
        exp_task_runs = n_flows * subflows * (tasks + 1)
        got_f = _count(t, FLOW_RUN_TABLE[t.name], (before[t.name]["flow_runs"] or 0) + exp_flow_runs)
        got_t = _count(t, t.task_run_table, (before[t.name]["task_runs"] or 0) + exp_task_runs)
        res["flow_runs_expected"] = exp_flow_runs
        res["flow_runs_in_db"] = None if got_f is None else got_f - (before[t.name]["flow_runs"] or 0)
        res["task_runs_expected"] = exp_task_runs
        res["task_runs_in_db"] = None if got_t is None else got_t - (before[t.name]["task_runs"] or 0)
        result["servers"][t.name] = res
    names = [t.name for t in targets]
    if "prefect" in names and "ours" in names:
        p, o = result["servers"]["prefect"], result["servers"]["ours"]
        for key in ("call_median_s", "proc_median_s"):
            if p[key] and o[key]:
                result[f"ratio_ours_over_prefect_{key}"] = round(o[key] / p[key], 3)
    return result
