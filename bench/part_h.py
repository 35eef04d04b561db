"""Part (h): ``Secret.load`` round trips with the real client (block document by its type's slug
and its name, with secrets), ``--loads`` per process, ``--runs`` processes per server,
interleaved. Reported: p50/p95/p99 of ``Secret.load`` (client set-up included, as a flow pays it)
and of the read alone on a shared client."""

from __future__ import annotations

from pathlib import Path

from part_a import run_flow_once
from servers import Target, log

SCRIPT = Path(__file__).resolve().parent / "secret_load.py"


def _pct(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    k = max(0, min(len(sorted_ms) - 1, round(q * (len(sorted_ms) - 1))))
    return round(sorted_ms[k], 2)


def _summary(values: list[float]) -> dict:
    values = sorted(values)
    return {
        "n": len(values),
        "p50_ms": _pct(values, 0.5),
        "p95_ms": _pct(values, 0.95),
        "p99_ms": _pct(values, 0.99),
    }


def run(targets: list[Target], workdir: Path, *, runs: int, loads: int = 200) -> dict:
    log_path = workdir / "logs" / "part_h_secret_load.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    homes = {}
    for t in targets:
        homes[t.name] = workdir / f"client-home-h-{t.name}"
        homes[t.name].mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {t.name: [] for t in targets}
    for i in range(runs):
        order = targets if i % 2 == 0 else list(reversed(targets))
        for t in order:
            r = run_flow_once(t, homes[t.name], 0, log_path, script=SCRIPT, args=(str(loads),))
            rows[t.name].append(r)
            if "load_ms" in r:
                log(
                    f"(h) run {i + 1}/{runs} {t.name}: Secret.load {_summary(r['load_ms'])}, "
                    f"read alone {_summary(r['read_ms'])}"
                )
            else:
                log(f"(h) run {i + 1}/{runs} {t.name}: FAILED rc={r.get('rc')} {r.get('error')}")
    result: dict = {"runs": runs, "loads_per_run": loads, "servers": {}}
    for t in targets:
        ok = [r for r in rows[t.name] if r.get("rc") == 0 and "load_ms" in r]
        res: dict = {
            "ok": len(ok),
            "failed": len(rows[t.name]) - len(ok),
            "load": _summary([x for r in ok for x in r["load_ms"]]),
            "read": _summary([x for r in ok for x in r["read_ms"]]),
            "per_run_load_p95_ms": [_summary(r["load_ms"])["p95_ms"] for r in ok],
            "per_run_read_p95_ms": [_summary(r["read_ms"])["p95_ms"] for r in ok],
        }
        failed = [r for r in rows[t.name] if r not in ok]
        if failed:
            res["first_error"] = {k: failed[0].get(k) for k in ("rc", "error", "stderr_tail")}
        result["servers"][t.name] = res
    return result
