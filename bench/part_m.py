# ruff: noqa: S608 - every statement is built from this module's own constants and generated ids
"""Part (m): the retention purge on a big workspace, ours only.

Prefect's server has no retention by plan (its database keeps runs, logs and events until someone
deletes them; Prefect Cloud's retention is not in the open-source server), so this part measures ours
alone.

Setup (timed, not part of the figures): rows generated inside PostgreSQL with ``INSERT … SELECT …
FROM generate_series`` (part (i)'s generator), at ``--m-scale`` (1.0: 100,000 flow runs, 1,000,000
task runs, 1,000,000 logs, 1,000,000 events with their 2,000,000 event-resource rows, 100,000
artifacts) spread evenly over the 90 days before now, in the bootstrap workspace, beside
``OTHER_WORKSPACES`` other workspaces of the same account with 1/100 of those rows each. The account
is on Enterprise, whose runs are kept 30 days, so about two thirds of every kind has expired. Runs
that never finished (Late runs, one in 1,000) are spread over the 90 days too: retention keeps them.
Rows whose time falls within ``BAND_HOURS`` after the expected cutoff are moved 4 hours earlier, so
no row sits on the boundary while the purge runs and what it must keep is exact.

Then, after ``VACUUM ANALYZE``: table and index sizes and row counts; a writer (one keep-alive HTTP
client) creates a flow run and posts 10 logs for it, back to back, for ``--m-baseline`` seconds
(the baseline) and then for as long as the purge runs; the purge runs in a subprocess with the
server's environment, calling the Celery task beat sends (``orchestration.purge_expired_run_data``)
in-process, with each batch's transaction timed (the service's ``transaction.atomic``, wrapped) and
every statement timed; a sampler counts sessions waiting on a lock (``pg_stat_activity``) every
0.1 s. Reported: the purge's duration and rows deleted, the longest batch transaction (the longest
any row lock is held), the writer's latency before and during the purge, the lock waits seen, the
sizes after the purge, after a plain ``VACUUM`` (the product does not vacuum: autovacuum does, and
what it last did is reported), and whether the rows left are exactly what the retention keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

FULL = {"flow_runs": 100_000, "task_runs_per_flow_run": 10, "events": 1_000_000, "logs_per_flow_run": 10}
ARTIFACTS_PER_FLOW_RUN = 1
OTHER_WORKSPACES = 10
OTHER_FRACTION = 100
RETENTION_DAYS = 30  # Enterprise, the bootstrap account's plan
BAND_HOURS = 3
TABLE_IN_SQL = re.compile(r'(?:FROM|UPDATE|INTO) "(\w+)"')
TERMINAL = "('COMPLETED','FAILED','CANCELLED','CRASHED')"

#: (key, table, the column retention reads, whether only finished runs expire)
TABLES = (
    ("flow_runs", "orchestration_flowrun", "end_time", True),
    ("task_runs", "orchestration_taskrun", "end_time", True),
    ("logs", "orchestration_log", "timestamp", False),
    ("events", "orchestration_event", "occurred", False),
    ("artifacts", "orchestration_artifact", "created", False),
)
#: Tables whose rows go with the above (cascades) and are sized too.
DEPENDENT = (
    ("flow_run_states", "orchestration_flowrunstate"),
    ("task_run_states", "orchestration_taskrunstate"),
    ("event_resources", "orchestration_eventresource"),
)


def sizes(scale: float) -> dict:
    return {
        "flow_runs": max(1000, round(FULL["flow_runs"] * scale)),
        "task_runs_per_flow_run": FULL["task_runs_per_flow_run"],
        "events": max(1000, round(FULL["events"] * scale)),
        "logs_per_flow_run": FULL["logs_per_flow_run"],
    }


def _artifacts_sql(ws: int, W: str, n: int, now: str) -> str:
    from part_i import DAYS, uid

    return (
        "INSERT INTO orchestration_artifact (id, key, type, description, data, metadata, flow_run_id, "
        "task_run_id, created, updated, workspace_id) "
        f"SELECT {uid('art', ws, 'a')}, 'result-' || (a % 50), 'markdown', NULL, to_jsonb('# result ' || a), "
        f"NULL, {uid('fr', ws, 'a')}, NULL, "
        f"{now}::timestamptz - interval '{DAYS} days' * ((a - 1)::float8 / {n}), "
        f"{now}::timestamptz - interval '{DAYS} days' * ((a - 1)::float8 / {n}), {W} "
        f"FROM generate_series(1, {n}) a;"
    )


def generate(target, size: dict, now: datetime) -> dict:
    """The big workspace and the others, then the boundary band moved; ``VACUUM ANALYZE``."""
    from part_i import LOAD_SETTINGS, _psql_script, other_workspaces, ours_sql
    from servers import log

    now_sql = f"'{now.isoformat()}'"
    t0 = time.perf_counter()
    ids = other_workspaces(target, OTHER_WORKSPACES)
    small = {
        **size,
        "flow_runs": max(10, size["flow_runs"] // OTHER_FRACTION),
        "events": max(10, size["events"] // OTHER_FRACTION),
    }
    workspaces = [(target.info["workspace_id"], 0, size), *((w, i, small) for i, w in enumerate(ids, 1))]
    for ws_id, index, sz in workspaces:
        sql = ours_sql(ws_id=ws_id, ws=index, size=sz, now=now_sql)
        sql += "\n" + _artifacts_sql(
            index, f"'{ws_id}'::uuid", sz["flow_runs"] * ARTIFACTS_PER_FLOW_RUN, now_sql
        )
        for statement in sql.split(";\n"):
            if statement.strip():
                s0 = time.perf_counter()
                _psql_script(target.db, LOAD_SETTINGS + statement.rstrip(";") + ";")
                if (took := time.perf_counter() - s0) > 5:
                    log(f"(m) {took:.1f}s for {statement[:70]}…")
    generated_s = time.perf_counter() - t0
    # No row within the band after the cutoff: moved 4 hours earlier (the purge's cutoff lies in
    # the band whenever it starts within BAND_HOURS of ``now``).
    cutoff = now - timedelta(days=RETENTION_DAYS)
    lo, hi = (cutoff - timedelta(minutes=10)).isoformat(), (cutoff + timedelta(hours=BAND_HOURS)).isoformat()
    moved = {}
    for key, table, column, _ in TABLES:
        moved[key] = _psql_count(
            target.db,
            f"UPDATE {table} SET {column} = {column} - interval '4 hours' "
            f"WHERE {column} >= '{lo}' AND {column} < '{hi}'",
        )
    _psql_script(
        target.db,
        "UPDATE orchestration_eventresource r SET occurred = e.occurred FROM "
        "orchestration_event e WHERE r.event_id = e.id AND r.occurred <> e.occurred;",
    )
    s0 = time.perf_counter()
    _psql_script(target.db, "VACUUM ANALYZE;")
    return {
        "generated_s": round(generated_s, 1),
        "band_moved": moved,
        "vacuum_analyze_s": round(time.perf_counter() - s0, 1),
        "total_s": round(time.perf_counter() - t0, 1),
    }


def _psql_count(db: str, sql: str) -> int:
    from servers import PG_HOST, PG_PORT, PG_USER

    out = subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", db, "-Atc", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return int(out.split()[-1])  # "UPDATE n"


def table_sizes(db: str) -> dict:
    """Rows, heap, indexes and total bytes of every table the purge touches."""
    from servers import psql

    out = {}
    for key, table in [(k, t) for k, t, *_ in TABLES] + list(DEPENDENT):
        row = psql(
            f"SELECT (SELECT count(*) FROM {table}), pg_relation_size('{table}'), "
            f"pg_indexes_size('{table}'), pg_total_relation_size('{table}'), "
            f"n_dead_tup, coalesce(last_autovacuum::text, '') FROM pg_stat_user_tables "
            f"WHERE relname = '{table}'",
            db=db,
        ).split("|")
        out[key] = {
            "rows": int(row[0]),
            "heap_mb": round(int(row[1]) / 2**20, 1),
            "indexes_mb": round(int(row[2]) / 2**20, 1),
            "total_mb": round(int(row[3]) / 2**20, 1),
            "dead_rows": int(row[4]),
            "last_autovacuum": row[5] or None,
        }
    out["database_mb"] = round(int(psql(f"SELECT pg_database_size('{db}')", db=db)) / 2**20, 1)
    return out


def must_keep(db: str, cutoff: datetime) -> dict:
    """Rows the retention keeps at ``cutoff`` (the same for any cutoff in the band): every unfinished
    run, every finished one that ended at or after it, every log, event and artifact from it on."""
    from servers import psql

    out = {}
    for key, table, column, runs in TABLES:
        expired = f"{column} < '{cutoff.isoformat()}'"
        if runs:
            expired = f"(state_type IN {TERMINAL} AND {expired})"
        out[key] = int(psql(f"SELECT count(*) FROM {table} WHERE NOT coalesce({expired}, false)", db=db))
    return out


def expired_left(db: str, cutoff: datetime) -> dict:
    """Rows still there that the retention no longer keeps (must be 0 after the purge)."""
    from servers import psql

    out = {}
    for key, table, column, runs in TABLES:
        expired = f"{column} < '{cutoff.isoformat()}'"
        if runs:
            expired = f"state_type IN {TERMINAL} AND {expired}"
        out[key] = int(psql(f"SELECT count(*) FROM {table} WHERE {expired}", db=db))
    # Rows that go with a deleted row: none may be left behind.
    out["event_resources_orphaned"] = int(
        psql(
            "SELECT count(*) FROM orchestration_eventresource r WHERE NOT EXISTS "
            "(SELECT 1 FROM orchestration_event e WHERE e.id = r.event_id)",
            db=db,
        )
    )
    return out


# --------------------------------------------------------------------------------------------------
# The writer and the lock sampler (in the bench process, while the purge runs in its subprocess)
# --------------------------------------------------------------------------------------------------


class LockSampler:
    """Every 0.1 s: the sessions of the database waiting on a lock, and the longest such wait."""

    def __init__(self, db: str):
        self.db = db
        self.samples = 0
        self.waiting_samples = 0
        self.max_waiting = 0
        self.max_wait_s = 0.0
        self.queries: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psycopg
        from servers import dsn

        with psycopg.connect(dsn(self.db), autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT extract(epoch FROM now() - query_start), left(query, 120) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).fetchall()
                self.samples += 1
                if rows:
                    self.waiting_samples += 1
                    self.max_waiting = max(self.max_waiting, len(rows))
                    self.max_wait_s = max(self.max_wait_s, max(float(r[0] or 0) for r in rows))
                    for _, query in rows:
                        if query not in self.queries and len(self.queries) < 5:
                            self.queries.append(query)
                self._stop.wait(0.1)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def result(self) -> dict:
        return {
            "samples": self.samples,
            "samples_with_a_lock_wait": self.waiting_samples,
            "most_sessions_waiting": self.max_waiting,
            "longest_wait_seen_s": round(self.max_wait_s, 3),
            "waiting_queries": self.queries,
        }


def _latency(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0}
    s = sorted(samples)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(len(s) * p))] * 1000, 1)

    return {
        "n": len(s),
        "p50_ms": round(statistics.median(s) * 1000, 1),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
        "max_ms": round(s[-1] * 1000, 1),
    }


async def _write(client, flow_id: str, stop: asyncio.Event, until: float | None, made: dict) -> dict:
    """Create a flow run, then post 10 logs for it, back to back, until ``stop`` or ``until``."""
    from wire import flow_run_body, iso_z

    runs: list[float] = []
    logs: list[float] = []
    errors: list[str] = []
    while not stop.is_set() and (until is None or time.monotonic() < until):
        t = time.perf_counter()
        r = await client.post("flow_runs/", json={**flow_run_body(flow_id), "name": "writer-run"})
        runs.append(time.perf_counter() - t)
        if r.status_code != 201:
            errors.append(f"flow_runs HTTP {r.status_code} {r.text[:200]}")
            continue
        made["flow_runs"] += 1
        run_id = r.json()["id"]
        now = iso_z(datetime.now(UTC))
        batch = [
            {"name": "writer", "level": 20, "message": f"writer {i}", "timestamp": now, "flow_run_id": run_id}
            for i in range(10)
        ]
        t = time.perf_counter()
        r = await client.post("logs/", json=batch)
        logs.append(time.perf_counter() - t)
        if r.status_code != 201:
            errors.append(f"logs HTTP {r.status_code} {r.text[:200]}")
            continue
        made["logs"] += len(batch)
    return {"create_flow_run": _latency(runs), "post_10_logs": _latency(logs), "errors": errors[:5]}


async def _purge_with_writer(target, *, baseline: float) -> dict:
    from wire import create_flow, http_client

    made = {"flow_runs": 0, "logs": 0}
    async with http_client(target, timeout=120.0) as client:
        flow_id = await create_flow(client, "writer")
        stop = asyncio.Event()
        before = await _write(client, flow_id, stop, time.monotonic() + baseline, made)
        env = {**target.env, "DJANGO_SETTINGS_MODULE": "config.settings.base", "LOG_LEVEL": "WARNING"}
        writer = asyncio.create_task(_write(client, flow_id, stop, None, made))
        started = datetime.now(UTC)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH / "part_m.py"),
            "--child",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await proc.communicate()
        finished = datetime.now(UTC)
        stop.set()
        during = await writer
    if proc.returncode != 0:
        raise RuntimeError(f"purge subprocess failed: {stderr.decode()[-3000:]}")
    purge = json.loads(stdout.decode().strip().splitlines()[-1])
    return {
        "purge": purge,
        "started": started,
        "finished": finished,
        "writer": {"baseline": before, "during_purge": during, "rows_written": made},
    }


def run(targets, *, scale: float, baseline: float = 20.0) -> dict:
    from servers import log, psql

    out: dict = {"scale": scale, "servers": {}}
    for t in targets:
        if t.name != "ours":
            out["servers"][t.name] = {"note": "Prefect's server has no retention by plan"}
            continue
        size = sizes(scale)
        now = datetime.now(UTC).replace(microsecond=0)
        log(f"(m) generating {size} (scale {scale}) and {OTHER_WORKSPACES} smaller workspaces")
        res: dict = {"sizes": size, "generation": generate(t, size, now)}
        log(f"(m) generated: {res['generation']}")
        cutoff_probe = now - timedelta(days=RETENTION_DAYS) + timedelta(hours=1)
        res["before"] = table_sizes(t.db)
        expected = must_keep(t.db, cutoff_probe)
        res["expected_kept_generated"] = expected
        log(f"(m) before: {json.dumps(res['before'])}")
        with LockSampler(t.db) as sampler:
            done = asyncio.run(_purge_with_writer(t, baseline=baseline))
        res["lock_waits"] = sampler.result()
        res["purge"] = done["purge"]
        res["writer"] = done["writer"]
        # The purge's cutoff is within the band when it started within BAND_HOURS of ``now``.
        in_band = done["finished"] - now < timedelta(hours=BAND_HOURS)
        res["after"] = table_sizes(t.db)
        kept = {key: res["after"][key]["rows"] for key, *_ in TABLES}
        # What the writer added (its flow runs, their logs and the events creating them emitted),
        # all newer than every generated row but the future scheduled runs.
        written = {
            "flow_runs": int(
                psql("SELECT count(*) FROM orchestration_flowrun WHERE name = 'writer-run'", db=t.db)
            ),
            "logs": int(psql("SELECT count(*) FROM orchestration_log WHERE name = 'writer'", db=t.db)),
            "events": int(
                psql(
                    f"SELECT count(*) FROM orchestration_event WHERE occurred > '{now.isoformat()}'", db=t.db
                )
            ),
        }
        want = {key: expected[key] + written.get(key, 0) for key in expected}
        left = expired_left(t.db, now - timedelta(days=RETENTION_DAYS) - timedelta(minutes=10))
        res["check"] = {
            "kept": kept,
            "expected": want,
            "written_during_purge": written,
            "expired_left": left,
            "exact": in_band and kept == want and not any(left.values()),
            "cutoff_in_band": in_band,
        }
        s0 = time.perf_counter()
        psql("VACUUM", db=t.db)
        res["vacuum_s"] = round(time.perf_counter() - s0, 1)
        res["after_vacuum"] = table_sizes(t.db)
        res["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        out["servers"][t.name] = res
        log("(m)\n" + table(res))
    return out


def table(res: dict) -> str:
    lines = [f"{'table':16} {'rows before':>12} {'after':>10} {'MB before':>10} {'after':>8} {'vacuumed':>9}"]
    for key in [k for k, *_ in TABLES] + [k for k, _ in DEPENDENT]:
        b, a, v = res["before"][key], res["after"][key], res["after_vacuum"][key]
        lines.append(
            f"{key:16} {b['rows']:>12,} {a['rows']:>10,} {b['total_mb']:>10} {a['total_mb']:>8} {v['total_mb']:>9}"
        )
    p = res["purge"]
    w = res["writer"]
    lines.append(
        f"purge {p['duration_s']} s, deleted {p['deleted']}, {p['batches']} batches, longest batch "
        f"transaction {p['longest_batch_s']} s; writer p99/max before {w['baseline']['create_flow_run']} "
        f"during {w['during_purge']['create_flow_run']}; exact: {res['check']['exact']}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The purge, in its own process with the server's environment
# --------------------------------------------------------------------------------------------------


def child() -> dict:
    """Run the task beat sends, as a worker runs it, with each batch's transaction and every
    statement timed."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection, transaction

    from orchestration import tasks
    from orchestration.services import retention

    batches: list[tuple[str, float]] = []
    statements: dict[str, list[float]] = {}

    class _TimedTransaction:
        """The service's ``transaction`` with ``atomic()`` timed: the span of one batch's delete,
        from its first statement to its commit (the row locks it takes are held this long)."""

        def __getattr__(self, name):
            return getattr(transaction, name)

        @contextlib.contextmanager
        def atomic(self, *args, **kwargs):
            t = time.perf_counter()
            with transaction.atomic(*args, **kwargs):
                yield
            batches.append((current["model"], time.perf_counter() - t))

    current = {"model": ""}

    def timed(execute, sql, params, many, context):
        t = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            verb = sql.split(None, 1)[0].upper()
            found = TABLE_IN_SQL.search(sql)
            table = found.group(1) if found else "?"
            if verb == "SELECT" and "LIMIT" in sql:
                current["model"] = table
            statements.setdefault(f"{verb} {table}", []).append(time.perf_counter() - t)

    retention.transaction = _TimedTransaction()
    load = os.getloadavg()
    t0 = time.perf_counter()
    with connection.execute_wrapper(timed):
        deleted = tasks.purge_expired_run_data()
    duration = time.perf_counter() - t0
    by_table: dict[str, list[float]] = {}
    for model, took in batches:
        by_table.setdefault(model, []).append(took)
    return {
        "task": tasks.purge_expired_run_data.name,
        "batch_size": retention.RETENTION_BATCH_SIZE,
        "duration_s": round(duration, 1),
        "deleted": deleted,
        "batches": len(batches),
        "longest_batch_s": round(max((b for _, b in batches), default=0.0), 3),
        "batches_by_table": {
            table: {
                "n": len(v),
                "total_s": round(sum(v), 1),
                "p50_ms": round(statistics.median(v) * 1000, 1),
                "max_ms": round(max(v) * 1000, 1),
            }
            for table, v in by_table.items()
        },
        "statements": {
            name: {"n": len(v), "total_s": round(sum(v), 1), "max_ms": round(max(v) * 1000, 1)}
            for name, v in sorted(statements.items(), key=lambda kv: -sum(kv[1]))
        },
        "loadavg_before": [round(x, 2) for x in load],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(child(), default=str))
        sys.exit(0)
    sys.exit("run through bench/run.py --only m --servers ours")
