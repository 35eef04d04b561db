# ruff: noqa: S608 - every statement is built from this module's own constants and generated ids
"""Part (i): the requests Prefect's UI makes, on a big workspace, side by side.

Setup (timed, not part of the figures): rows generated inside PostgreSQL with
``INSERT … SELECT … FROM generate_series`` (no ORM, no row-by-row SQL), at ``--i-scale`` of the full
size (1.0: the issue's size):

  * the big workspace: 1,000,000 flow runs (50 flows, 200 deployments on 5 work pools, 70 % of runs
    from a deployment), 10 task runs per flow run (10,000,000), 10,000,000 events and 2 logs per flow
    run, spread evenly over the 90 days before now; every run has its current state row; states
    80 % Completed, 8 % Failed, 1 % Crashed, 1 % Cancelled, 0.1 % Late (SCHEDULED in the past), the
    rest Completed; runs started in the last hour are Running; one in 500 runs is in the future
    (SCHEDULED). One run ("the graph run") has 200 task runs and 1,000 logs.
  * ours only: 100 other workspaces in the same account, each with 1/500 of the big workspace's
    rows (together a fifth more), so every query must find the workspace's rows among others'.
  * Prefect's database holds the big workspace's rows, with the same ids and values, in its own
    schema (created by its server's migrations): one Prefect server serves one team, it has no
    workspaces to skip. ``event_resources`` (Prefect's) and ``orchestration_eventresource`` (ours)
    get the rows each server writes for each event at ingest (the resource and each related one).

Both databases are ``VACUUM ANALYZE``d after loading. Then each request is sent ``--i-requests``
times (after 3 warm-ups) by one client, as a page loading would, and p50/p95 are reported per
request and server. The request bodies are those of Prefect's UI (``prefect/server/ui`` bundle,
``prefect-ui-library`` mappers): the dashboard (flow-run history, task-run counts, late runs, counts
by state), the runs list (``flow_runs/paginate`` with a state filter, sorted), a flow run's
``graph-v2`` and its logs, a deployment's runs, a work pool's runs, and the event feed
(``events/filter``).

Then the sweeps that run forever on that database, each called three times in a fresh process:
the scheduler's tick, late runs, the cancellation clean-up, stuck cancellations, expired pauses
(and ours, zombie runs). Ours as its beat tasks call them (finding and changing runs in one call);
Prefect's perpetual service functions as its server calls them every loop, with their docket
recorded, not run (each run found is changed by a task later). ``python bench/part_i.py
--db-prefix P`` times them again on the databases a ``--keep`` run left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
from part_c import figures
from servers import PG_HOST, PG_PORT, PG_USER, PY, ROOT, Target, clean_env, log, psql
from wire import http_client, iso_z

FULL = {"flow_runs": 1_000_000, "task_runs_per_flow_run": 10, "events": 10_000_000, "logs_per_flow_run": 2}
FLOWS, DEPLOYMENTS, POOLS = 50, 200, 5
OTHER_WORKSPACES = 100
OTHER_FRACTION = 500  # each other workspace holds 1/500 of the big one's rows
GRAPH_TASKS, GRAPH_LOGS = 200, 1000
DAYS = 90


def sizes(scale: float) -> dict:
    return {
        "flow_runs": max(1000, round(FULL["flow_runs"] * scale)),
        "task_runs_per_flow_run": FULL["task_runs_per_flow_run"],
        "events": max(1000, round(FULL["events"] * scale)),
        "logs_per_flow_run": FULL["logs_per_flow_run"],
    }


# --------------------------------------------------------------------------------------------------
# Generation: one SQL dialect for both schemas, differing only in table and column names.
# ``uid(kind, ws, n)`` is the same UUID in both databases, so the same rows are asked for.
# --------------------------------------------------------------------------------------------------


#: A run and its current state point at each other (foreign keys both ways, Prefect's not
#: deferrable): the rows are consistent by construction, so the load skips the foreign-key
#: triggers (``session_replication_role = replica``, as ``pg_restore`` does).
LOAD_SETTINGS = "SET synchronous_commit TO OFF;\nSET session_replication_role = replica;\n"


def uid(kind: str, ws: int, n: str) -> str:
    return f"md5('{kind}:{ws}:' || ({n})::text)::uuid"


def _psql_script(db: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", db, "-v", "ON_ERROR_STOP=1", "-q"],
        input=sql,
        check=True,
        capture_output=True,
        text=True,
    )


def _common(ws: int, n: int, now: str) -> dict[str, str]:
    """SQL expressions of flow run ``g`` (1..n) of workspace ``ws``: spread over DAYS days before
    ``now``, the newest first."""
    start = f"({now}::timestamptz - interval '{DAYS} days' * ((g - 1)::float8 / {n}))"
    h = "((g * 2654435761::bigint) % 1000)"
    # state: future runs (1 in 500) are SCHEDULED ahead; 0.1 % are Late; the last hour is Running.
    future = "(g % 500 = 250)"
    state = (
        f"CASE WHEN {future} THEN 'SCHEDULED' WHEN g % 1000 = 0 THEN 'SCHEDULED' "
        f"WHEN {start} > {now}::timestamptz - interval '1 hour' THEN 'RUNNING' "
        f"WHEN {h} < 800 THEN 'COMPLETED' WHEN {h} < 880 THEN 'FAILED' WHEN {h} < 890 THEN 'CRASHED' "
        f"WHEN {h} < 900 THEN 'CANCELLED' ELSE 'COMPLETED' END"
    )
    name = (
        f"CASE WHEN {future} THEN 'Scheduled' WHEN g % 1000 = 0 THEN 'Late' "
        f"WHEN {start} > {now}::timestamptz - interval '1 hour' THEN 'Running' "
        f"WHEN {h} < 800 THEN 'Completed' WHEN {h} < 880 THEN 'Failed' WHEN {h} < 890 THEN 'Crashed' "
        f"WHEN {h} < 900 THEN 'Cancelled' ELSE 'Completed' END"
    )
    expected = (
        f"CASE WHEN {future} THEN {now}::timestamptz + interval '1 minute' * (g % 5000 + 1) ELSE {start} END"
    )
    ran = f"({future} OR g % 1000 = 0)"
    dep = f"CASE WHEN g % 10 < 7 THEN g % {DEPLOYMENTS} END"
    return {
        "id": uid("fr", ws, "g"),
        "state_id": uid("frs", ws, "g"),
        "flow_id": uid("flow", ws, f"g % {FLOWS}"),
        "deployment_id": f"CASE WHEN g % 10 < 7 THEN {uid('dep', ws, f'g % {DEPLOYMENTS}')} END",
        "work_queue_id": f"CASE WHEN g % 10 < 7 THEN {uid('wq', ws, f'(g % {DEPLOYMENTS}) % {POOLS}')} END",
        "work_queue_name": "CASE WHEN g % 10 < 7 THEN 'default' END",
        "work_pool_id": f"CASE WHEN g % 10 < 7 THEN {uid('wp', ws, f'(g % {DEPLOYMENTS}) % {POOLS}')} END",
        "work_pool_name": f"CASE WHEN g % 10 < 7 THEN 'pool-' || (({dep}) % {POOLS}) END",
        "name": "'run-' || g",
        "state_type": state,
        "state_name": name,
        "expected_start_time": expected,
        "next_scheduled_start_time": f"CASE WHEN {ran} THEN {expected} END",
        "start_time": f"CASE WHEN {ran} THEN NULL ELSE {start} + interval '5 seconds' END",
        "end_time": f"CASE WHEN {ran} OR {start} > {now}::timestamptz - interval '1 hour' THEN NULL "
        f"ELSE {start} + interval '65 seconds' END",
        "state_timestamp": f"CASE WHEN {ran} THEN {expected} - interval '1 hour' ELSE {start} + interval '65 seconds' END",
        "created": f"CASE WHEN {ran} THEN {expected} - interval '1 hour' ELSE {start} END",
        "tags": "jsonb_build_array('bench', 'team-' || (g % 5))",
        "auto_scheduled": "(g % 10 < 7)",
        "run_count": f"CASE WHEN {ran} THEN 0 ELSE 1 END",
    }


def _task_common(ws: int, n_tasks_per: int, n: int, now: str) -> dict[str, str]:
    """Task run ``t`` (1..n*per) of workspace ``ws``: flow run ``g = (t-1)/per + 1``."""
    g = f"((t - 1) / {n_tasks_per} + 1)"
    k = f"((t - 1) % {n_tasks_per})"
    start = f"({now}::timestamptz - interval '{DAYS} days' * (({g} - 1)::float8 / {n}) + interval '6 seconds' * {k})"
    h = "((t * 2654435761::bigint) % 100)"
    return {
        "id": uid("tr", ws, "t"),
        "state_id": uid("trs", ws, "t"),
        "flow_run_id": uid("fr", ws, g),
        "name": f"'task-' || {k} || '-' || t",
        "task_key": f"'task-' || {k}",
        "dynamic_key": f"({g})::text",
        "state_type": f"CASE WHEN {h} < 97 THEN 'COMPLETED' ELSE 'FAILED' END",
        "state_name": f"CASE WHEN {h} < 97 THEN 'Completed' ELSE 'Failed' END",
        "start": start,
    }


def _graph_tasks(ws: int, now: str) -> tuple[str, str]:
    """The graph run: flow run 2 of the workspace, with GRAPH_TASKS more task runs."""
    return uid("fr", ws, "2"), f"({now}::timestamptz - interval '1 day')"


def _graph_task_exprs(ws: int, now: str) -> dict[str, str]:
    graph_id, gstart = _graph_tasks(ws, now)
    return {
        "id": uid("trg", ws, "t"),
        "state_id": uid("trgs", ws, "t"),
        "flow_run_id": graph_id,
        "name": "'mapped-' || t",
        "task_key": "'mapped'",
        "dynamic_key": "t::text",
        "state_type": "'COMPLETED'",
        "state_name": "'Completed'",
        "start": f"({gstart} + interval '1 second' * t)",
    }


def ours_sql(*, ws_id: str, ws: int, size: dict, now: str) -> str:
    n = size["flow_runs"]
    per = size["task_runs_per_flow_run"]
    c = _common(ws, n, now)
    W = f"'{ws_id}'::uuid"
    out = []
    out.append(
        "INSERT INTO orchestration_flow (id, name, tags, labels, created, updated, workspace_id) "
        f"SELECT {uid('flow', ws, 'g')}, 'flow-' || g, '[]', '{{}}', {now}, {now}, {W} "
        f"FROM generate_series(0, {FLOWS - 1}) g;"
    )
    out.append(
        "INSERT INTO orchestration_workpool (id, name, description, type, base_job_template, is_paused, "
        "storage_configuration, created, updated, workspace_id, default_queue_id) "
        f"SELECT {uid('wp', ws, 'g')}, 'pool-' || g, NULL, 'process', '{{}}', false, '{{}}', {now}, {now}, {W}, "
        f"NULL FROM generate_series(0, {POOLS - 1}) g;"
    )
    out.append(
        "INSERT INTO orchestration_workqueue (id, name, description, is_paused, priority, created, updated, "
        "work_pool_id, workspace_id) "
        f"SELECT {uid('wq', ws, 'g')}, 'default', '', false, 1, {now}, {now}, {uid('wp', ws, 'g')}, {W} "
        f"FROM generate_series(0, {POOLS - 1}) g;"
    )
    out.append(
        f"UPDATE orchestration_workpool SET default_queue_id = md5('wq:{ws}:' || substr(name, 6))::uuid "
        f"WHERE workspace_id = {W} AND name LIKE 'pool-%';"
    )
    out.append(
        "INSERT INTO orchestration_deployment (id, name, paused, parameters, enforce_parameter_schema, "
        "job_variables, tags, labels, work_queue_name, created, updated, flow_id, workspace_id, work_queue_id) "
        f"SELECT {uid('dep', ws, 'g')}, 'dep-' || g, false, '{{}}', false, '{{}}', '[]', '{{}}', 'default', "
        f"{now}, {now}, {uid('flow', ws, f'g % {FLOWS}')}, {W}, {uid('wq', ws, f'g % {POOLS}')} "
        f"FROM generate_series(0, {DEPLOYMENTS - 1}) g;"
    )
    out.append(
        "INSERT INTO orchestration_flowrun (id, workspace_id, flow_id, name, state_id, state_type, state_name, "
        "state_timestamp, run_count, expected_start_time, next_scheduled_start_time, start_time, end_time, "
        "total_run_time, empirical_policy, tags, labels, created, updated, parameters, context, auto_scheduled, "
        "job_variables, deployment_id, work_queue_id, work_queue_name, work_pool_id, work_pool_name) "
        f"SELECT {c['id']}, {W}, {c['flow_id']}, {c['name']}, {c['state_id']}, {c['state_type']}, "
        f"{c['state_name']}, {c['state_timestamp']}, {c['run_count']}, {c['expected_start_time']}, "
        f"{c['next_scheduled_start_time']}, {c['start_time']}, {c['end_time']}, "
        "CASE WHEN " + c["end_time"] + " IS NULL THEN 0 ELSE 60 END, '{}', "
        f"{c['tags']}, '{{}}', {c['created']}, {c['created']}, '{{}}', '{{}}', {c['auto_scheduled']}, '{{}}', "
        f"{c['deployment_id']}, {c['work_queue_id']}, {c['work_queue_name']}, {c['work_pool_id']}, "
        f"{c['work_pool_name']} FROM generate_series(1, {n}) g;"
    )
    out.append(
        "INSERT INTO orchestration_flowrunstate (id, type, name, timestamp, message, state_details, created, "
        "flow_run_id, workspace_id) SELECT state_id, state_type, state_name, state_timestamp, '', '{}', "
        f"state_timestamp, id, workspace_id FROM orchestration_flowrun WHERE workspace_id = {W};"
    )
    t = _task_common(ws, per, n, now)
    out.append(_ours_tasks(t, W, f"generate_series(1, {n * per}) t", now))
    # The graph run's extra task runs and logs.
    graph_id, gstart = _graph_tasks(ws, now)
    graph = GRAPH_TASKS if ws == 0 else 0
    out.append(_ours_tasks(_graph_task_exprs(ws, now), W, f"generate_series(1, {graph}) t", now))
    out.append(
        "INSERT INTO orchestration_taskrunstate (id, type, name, timestamp, message, state_details, "
        "task_run_id, workspace_id) SELECT state_id, state_type, state_name, end_time, '', '{}', id, "
        f"workspace_id FROM orchestration_taskrun WHERE workspace_id = {W};"
    )
    lpf = size["logs_per_flow_run"]
    out.append(
        "INSERT INTO orchestration_log (id, name, level, message, timestamp, flow_run_id, task_run_id, created, "
        "updated, workspace_id) "
        f"SELECT {uid('log', ws, 'l')}, 'prefect.flow_runs', 20, 'log line ' || l, "
        f"{now}::timestamptz - interval '{DAYS} days' * ((((l - 1) / {lpf}))::float8 / {n}), "
        f"{uid('fr', ws, f'(l - 1) / {lpf} + 1')}, NULL, {now}, {now}, {W} "
        f"FROM generate_series(1, {n * lpf}) l;"
    )
    out.append(
        "INSERT INTO orchestration_log (id, name, level, message, timestamp, flow_run_id, task_run_id, created, "
        "updated, workspace_id) "
        f"SELECT {uid('logg', ws, 'l')}, 'prefect.flow_runs', 20, 'graph log ' || l, "
        f"{gstart} + interval '10 milliseconds' * l, {graph_id}, NULL, {now}, {now}, {W} "
        f"FROM generate_series(1, {GRAPH_LOGS if ws == 0 else 0}) l;"
    )
    out.append(_ours_events(ws, W, size["events"], n, now))
    return "\n".join(out)


def _ours_tasks(t: dict, W: str, series: str, now: str) -> str:
    return (
        "INSERT INTO orchestration_taskrun (id, workspace_id, flow_run_id, state_id, name, task_key, dynamic_key, "
        "state_type, state_name, state_timestamp, run_count, expected_start_time, start_time, end_time, "
        "total_run_time, empirical_policy, tags, labels, created, updated, task_inputs, flow_run_run_count) "
        f"SELECT {t['id']}, {W}, {t['flow_run_id']}, {t['state_id']}, {t['name']}, {t['task_key']}, "
        f"{t['dynamic_key']}, {t['state_type']}, {t['state_name']}, {t['start']} + interval '5 seconds', 1, "
        f"{t['start']}, {t['start']}, {t['start']} + interval '5 seconds', 5, '{{}}', '[]', '{{}}', "
        f"{t['start']}, {t['start']}, '{{}}', 1 FROM {series};"
    )


def _event_common(ws: int, n_events: int, n_runs: int, now: str) -> dict[str, str]:
    k = f"(e % {n_runs} + 1)"
    names = "(ARRAY['prefect.flow-run.Pending','prefect.flow-run.Running','prefect.flow-run.Completed'])"
    return {
        "k": k,
        "id": uid("ev", ws, "e"),
        "occurred": f"({now}::timestamptz - interval '{DAYS} days' * ((e - 1)::float8 / {n_events}))",
        "event": f"{names}[e % 3 + 1]",
        "resource_id": f"'prefect.flow-run.' || {uid('fr', ws, k)}",
        "resource": f"jsonb_build_object('prefect.resource.id', 'prefect.flow-run.' || {uid('fr', ws, k)}, "
        f"'prefect.resource.name', 'run-' || {k})",
        "flow_rid": f"'prefect.flow.' || {uid('flow', ws, f'{k} % {FLOWS}')}",
        "related": f"jsonb_build_array(jsonb_build_object('prefect.resource.id', 'prefect.flow.' || "
        f"{uid('flow', ws, f'{k} % {FLOWS}')}, 'prefect.resource.role', 'flow', 'prefect.resource.name', "
        f"'flow-' || ({k} % {FLOWS})))",
    }


def _ours_events(ws: int, W: str, n_events: int, n_runs: int, now: str) -> str:
    e = _event_common(ws, n_events, n_runs, now)
    return (
        "INSERT INTO orchestration_event (id, occurred, event, resource_id, resource, related, payload, "
        "received, workspace_id) "
        f"SELECT {e['id']}, {e['occurred']}, {e['event']}, {e['resource_id']}, {e['resource']}, "
        f"{e['related']}, '{{}}', {e['occurred']}, {W} FROM generate_series(1, {n_events}) e;\n"
        # What ingest writes per event (``EventResource``): its resource and each related resource.
        "INSERT INTO orchestration_eventresource (event_id, resource_id, resource_role, occurred, workspace_id) "
        f"SELECT {e['id']}, {e['resource_id']}, '', {e['occurred']}, {W} FROM generate_series(1, {n_events}) e;\n"
        "INSERT INTO orchestration_eventresource (event_id, resource_id, resource_role, occurred, workspace_id) "
        f"SELECT {e['id']}, {e['flow_rid']}, 'flow', {e['occurred']}, {W} FROM generate_series(1, {n_events}) e;"
    )


def prefect_sql(*, size: dict, now: str) -> str:
    ws = 0
    n = size["flow_runs"]
    per = size["task_runs_per_flow_run"]
    c = _common(ws, n, now)
    out = [
        f"INSERT INTO flow (id, name, tags, labels, created, updated) SELECT {uid('flow', ws, 'g')}, "
        f"'flow-' || g, '[]', '{{}}', {now}, {now} FROM generate_series(0, {FLOWS - 1}) g;",
        f"INSERT INTO work_pool (id, name, type, base_job_template, is_paused, status, created, updated) "
        f"SELECT {uid('wp', ws, 'g')}, 'pool-' || g, 'process', '{{}}', false, 'READY', {now}, {now} "
        f"FROM generate_series(0, {POOLS - 1}) g;",
        f"INSERT INTO work_queue (id, name, description, is_paused, priority, work_pool_id, status, created, "
        f"updated) SELECT {uid('wq', ws, 'g')}, 'default', '', false, 1, {uid('wp', ws, 'g')}, 'READY', "
        f"{now}, {now} FROM generate_series(0, {POOLS - 1}) g;",
        f"UPDATE work_pool SET default_queue_id = md5('wq:{ws}:' || substr(name, 6))::uuid "
        "WHERE name LIKE 'pool-%';",
        "INSERT INTO deployment (id, name, paused, parameters, enforce_parameter_schema, tags, labels, "
        "work_queue_name, created, updated, flow_id, work_queue_id, status) "
        f"SELECT {uid('dep', ws, 'g')}, 'dep-' || g, false, '{{}}', false, '[]', '{{}}', 'default', {now}, "
        f"{now}, {uid('flow', ws, f'g % {FLOWS}')}, {uid('wq', ws, f'g % {POOLS}')}, 'READY' "
        f"FROM generate_series(0, {DEPLOYMENTS - 1}) g;",
        "INSERT INTO flow_run (id, flow_id, name, state_id, state_type, state_name, state_timestamp, run_count, "
        "expected_start_time, next_scheduled_start_time, start_time, end_time, total_run_time, empirical_policy, "
        "tags, labels, created, updated, parameters, context, auto_scheduled, job_variables, deployment_id, "
        "work_queue_id, work_queue_name) "
        f"SELECT {c['id']}, {c['flow_id']}, {c['name']}, {c['state_id']}, ({c['state_type']})::state_type, "
        f"{c['state_name']}, {c['state_timestamp']}, {c['run_count']}, {c['expected_start_time']}, "
        f"{c['next_scheduled_start_time']}, {c['start_time']}, {c['end_time']}, "
        "CASE WHEN " + c["end_time"] + " IS NULL THEN interval '0' ELSE interval '60 seconds' END, '{}', "
        f"{c['tags']}, '{{}}', {c['created']}, {c['created']}, '{{}}', '{{}}', {c['auto_scheduled']}, '{{}}', "
        f"{c['deployment_id']}, {c['work_queue_id']}, {c['work_queue_name']} "
        f"FROM generate_series(1, {n}) g;",
        "INSERT INTO flow_run_state (id, type, name, timestamp, message, state_details, created, updated, "
        "flow_run_id) SELECT state_id, state_type, state_name, state_timestamp, '', '{}', state_timestamp, "
        "state_timestamp, id FROM flow_run;",
    ]
    t = _task_common(ws, per, n, now)
    out.append(_prefect_tasks(t, f"generate_series(1, {n * per}) t"))
    graph_id, gstart = _graph_tasks(ws, now)
    gt = _graph_task_exprs(ws, now)
    out.append(_prefect_tasks(gt, f"generate_series(1, {GRAPH_TASKS}) t"))
    out.append(
        "INSERT INTO task_run_state (id, type, name, timestamp, message, state_details, created, updated, "
        "task_run_id) SELECT state_id, state_type, state_name, end_time, '', '{}', end_time, end_time, id "
        "FROM task_run;"
    )
    lpf = size["logs_per_flow_run"]
    out.append(
        "INSERT INTO log (id, name, level, message, timestamp, flow_run_id, task_run_id, created, updated) "
        f"SELECT {uid('log', ws, 'l')}, 'prefect.flow_runs', 20, 'log line ' || l, "
        f"{now}::timestamptz - interval '{DAYS} days' * ((((l - 1) / {lpf}))::float8 / {n}), "
        f"{uid('fr', ws, f'(l - 1) / {lpf} + 1')}, NULL, {now}, {now} "
        f"FROM generate_series(1, {n * lpf}) l;"
    )
    out.append(
        "INSERT INTO log (id, name, level, message, timestamp, flow_run_id, task_run_id, created, updated) "
        f"SELECT {uid('logg', ws, 'l')}, 'prefect.flow_runs', 20, 'graph log ' || l, "
        f"{gstart} + interval '10 milliseconds' * l, {graph_id}, NULL, {now}, {now} "
        f"FROM generate_series(1, {GRAPH_LOGS}) l;"
    )
    e = _event_common(ws, size["events"], n, now)
    out.append(
        "INSERT INTO events (id, occurred, event, resource_id, resource, related_resource_ids, related, payload, "
        "received, recorded, created, updated) "
        f"SELECT {e['id']}, {e['occurred']}, {e['event']}, {e['resource_id']}, {e['resource']}, "
        f"jsonb_build_array({e['flow_rid']}), {e['related']}, '{{}}', {e['occurred']}, {e['occurred']}, "
        f"{e['occurred']}, {e['occurred']} FROM generate_series(1, {size['events']}) e;"
    )
    # What Prefect writes per event: one row for the resource and one per related resource.
    out.append(
        "INSERT INTO event_resources (id, occurred, resource_id, resource_role, resource, event_id, created, "
        f"updated) SELECT {uid('evr', ws, 'e')}, {e['occurred']}, {e['resource_id']}, '', "
        f"json_build_object('prefect.resource.name', 'run-' || {e['k']}), {e['id']}, {e['occurred']}, "
        f"{e['occurred']} FROM generate_series(1, {size['events']}) e;"
    )
    out.append(
        "INSERT INTO event_resources (id, occurred, resource_id, resource_role, resource, event_id, created, "
        f"updated) SELECT {uid('evf', ws, 'e')}, {e['occurred']}, {e['flow_rid']}, 'flow', "
        f"json_build_object('prefect.resource.name', 'flow-' || ({e['k']} % {FLOWS})), {e['id']}, "
        f"{e['occurred']}, {e['occurred']} FROM generate_series(1, {size['events']}) e;"
    )
    return "\n".join(out)


def _prefect_tasks(t: dict, series: str) -> str:
    return (
        "INSERT INTO task_run (id, flow_run_id, state_id, name, task_key, dynamic_key, state_type, state_name, "
        "state_timestamp, run_count, expected_start_time, start_time, end_time, total_run_time, "
        "empirical_policy, tags, labels, created, updated, task_inputs, flow_run_run_count) "
        f"SELECT {t['id']}, {t['flow_run_id']}, {t['state_id']}, {t['name']}, {t['task_key']}, "
        f"{t['dynamic_key']}, ({t['state_type']})::state_type, {t['state_name']}, "
        f"{t['start']} + interval '5 seconds', 1, {t['start']}, {t['start']}, {t['start']} + interval '5 seconds', "
        f"interval '5 seconds', '{{}}', '[]', '{{}}', {t['start']}, {t['start']}, '{{}}', 1 FROM {series};"
    )


def other_workspaces(target: Target, count: int) -> list[str]:
    """``count`` more workspaces in the benchmark's account (``other-1`` …), their ids in order."""
    account_id = target.info["account_id"]
    psql(
        "INSERT INTO tenants_workspace (id, name, handle, description, created, updated, account_id) "
        f"SELECT {uid('ws', 0, 'g')}, 'Other ' || g, 'other-' || g, '', now(), now(), '{account_id}' "
        f"FROM generate_series(1, {count}) g",
        db=target.db,
    )
    ids = psql(
        f"SELECT id FROM tenants_workspace WHERE account_id = '{account_id}' AND handle LIKE 'other-%' "
        "ORDER BY substr(handle, 7)::int",
        db=target.db,
    ).split()
    return ids


def _ours_other_workspaces(target: Target, size: dict, now: str) -> float:
    """OTHER_WORKSPACES workspaces in the benchmark's account, each with 1/OTHER_FRACTION of the
    big workspace's rows."""
    small = {
        "flow_runs": max(10, size["flow_runs"] // OTHER_FRACTION),
        "task_runs_per_flow_run": size["task_runs_per_flow_run"],
        "events": max(10, size["events"] // OTHER_FRACTION),
        "logs_per_flow_run": size["logs_per_flow_run"],
    }
    t0 = time.perf_counter()
    ids = other_workspaces(target, OTHER_WORKSPACES)
    for index, ws_id in enumerate(ids, start=1):
        _psql_script(
            target.db, "BEGIN;\n" + ours_sql(ws_id=ws_id, ws=index, size=small, now=now) + "\nCOMMIT;"
        )
    return time.perf_counter() - t0


INDEX_BUILD_SETTINGS = "SET maintenance_work_mem TO '1GB';\nSET max_parallel_maintenance_workers TO 2;\n"


def _secondary_indexes(db: str, tables: list[str]) -> list[tuple[str, str]]:
    """The indexes of ``tables`` that no constraint owns (the primary keys and unique constraints
    stay): their names and ``CREATE INDEX`` definitions, as ``pg_indexes`` gives them."""
    names = ", ".join(f"'{t}'" for t in sorted(set(tables)))
    rows = psql(
        "SELECT i.indexname || E'\\t' || i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' "
        f"AND i.tablename IN ({names}) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conname = i.indexname) ORDER BY i.tablename, i.indexname",
        db=db,
    )
    return [tuple(line.split("\t", 1)) for line in rows.splitlines() if line.strip()]


def generate(target: Target, size: dict, now: str) -> dict:
    res: dict = {}
    t0 = time.perf_counter()
    if target.name == "ours":
        res["other_workspaces_s"] = round(_ours_other_workspaces(target, size, now), 1)
        sql = ours_sql(ws_id=target.info["workspace_id"], ws=0, size=size, now=now)
    else:
        sql = prefect_sql(size=size, now=now)
    # Bulk loading is several times faster without the secondary indexes to maintain row by row:
    # they are dropped for the big workspace's load and built again, with the same definitions,
    # once it is in (the other workspaces, loaded first, are read back through them).
    loaded = re.findall(r"INSERT INTO (\w+)", sql)
    indexes = _secondary_indexes(target.db, loaded)
    t = time.perf_counter()
    if indexes:
        _psql_script(target.db, "".join(f'DROP INDEX "{name}";\n' for name, _ in indexes))
    for statement in sql.split(";\n"):
        if statement.strip():
            s0 = time.perf_counter()
            _psql_script(target.db, LOAD_SETTINGS + statement.rstrip(";") + ";")
            took = time.perf_counter() - s0
            if took > 5:
                log(f"(i) {target.name}: {took:.1f}s for {statement[:70]}…")
    res["big_workspace_s"] = round(time.perf_counter() - t, 1)
    s0 = time.perf_counter()
    if indexes:
        _psql_script(
            target.db, INDEX_BUILD_SETTINGS + "".join(f"{definition};\n" for _, definition in indexes)
        )
    res["index_build_s"] = round(time.perf_counter() - s0, 1)
    res["indexes_rebuilt"] = len(indexes)
    if len(_secondary_indexes(target.db, loaded)) != len(indexes):
        raise RuntimeError(f"(i) {target.name}: the secondary indexes were not all built again")
    s0 = time.perf_counter()
    _psql_script(target.db, "VACUUM ANALYZE;")
    res["vacuum_analyze_s"] = round(time.perf_counter() - s0, 1)
    res["total_s"] = round(time.perf_counter() - t0, 1)
    res["db_size"] = psql(f"SELECT pg_size_pretty(pg_database_size('{target.db}'))", db=target.db)
    return res


def generated_at(targets: list[Target]) -> datetime:
    """The ``now`` an earlier generation used: its newest run (the first of the series, Running
    then, perhaps crashed since by a zombie sweep) was expected to start then; only the runs still
    scheduled (ahead, or late) are expected later."""
    for t in targets:
        table = "flow_run" if t.name == "prefect" else "orchestration_flowrun"
        value = psql(f"SELECT max(expected_start_time) FROM {table} WHERE state_type <> 'SCHEDULED'", db=t.db)
        if value:
            return datetime.fromisoformat(value).astimezone(UTC)
    raise RuntimeError("(i) no generated rows to reuse")


def counts(target: Target) -> dict:
    tables = (
        ("flow_run", "task_run", "events", "log")
        if target.name == "prefect"
        else ("orchestration_flowrun", "orchestration_taskrun", "orchestration_event", "orchestration_log")
    )
    out = {}
    for key, table in zip(("flow_runs", "task_runs", "events", "logs"), tables, strict=True):
        out[key] = int(psql(f"SELECT count(*) FROM {table}", db=target.db))  # noqa: S608 - fixed names
    return out


# --------------------------------------------------------------------------------------------------
# The requests (bodies as Prefect's UI sends them)
# --------------------------------------------------------------------------------------------------


def requests(now: datetime, size: dict) -> list[tuple[str, str, str, dict | None]]:
    """(label, method, path, body)."""
    ws = 0
    day_ago, week_ago = iso_z(now - timedelta(days=1)), iso_z(now - timedelta(days=7))
    end = iso_z(now)
    graph_run = _uuid("fr", ws, 2)
    deployment = _uuid("dep", ws, 3)  # a deployment with runs (g % 200 == 3)
    not_subflow = {"operator": "and_", "is_null_": True}
    window = {"after_": day_ago, "before_": end}
    return [
        (
            "dashboard: flow-run history (ui/flow_runs/history)",
            "POST",
            "ui/flow_runs/history",
            {
                "sort": "EXPECTED_START_TIME_DESC",
                "limit": 1000,
                "offset": 0,
                "flow_runs": {
                    "operator": "and_",
                    "expected_start_time": window,
                    "parent_task_run_id": not_subflow,
                },
            },
        ),
        (
            "dashboard: task-run counts (ui/task_runs/dashboard/counts)",
            "POST",
            "ui/task_runs/dashboard/counts",
            {"task_runs": {"operator": "and_", "start_time": {**window, "is_null_": False}}},
        ),
        (
            "dashboard: task-run counts by state (ui/task_runs/count)",
            "POST",
            "ui/task_runs/count",
            {"task_runs": {"operator": "and_", "start_time": {**window, "is_null_": False}}},
        ),
        (
            "dashboard: late runs (flow_runs/filter)",
            "POST",
            "flow_runs/filter",
            {
                "flow_runs": {
                    "operator": "and_",
                    "state": {"operator": "and_", "name": {"any_": ["Late"]}},
                    "expected_start_time": {"before_": end},
                },
                "sort": "EXPECTED_START_TIME_ASC",
                "limit": 3,
                "offset": 0,
            },
        ),
        (
            "dashboard: failed runs count (flow_runs/count)",
            "POST",
            "flow_runs/count",
            {
                "flow_runs": {
                    "operator": "and_",
                    "expected_start_time": window,
                    "state": {"operator": "and_", "type": {"any_": ["FAILED", "CRASHED"]}},
                    "parent_task_run_id": not_subflow,
                }
            },
        ),
        (
            "runs list (flow_runs/paginate, 7 days, sort start desc)",
            "POST",
            "flow_runs/paginate",
            {
                "page": 1,
                "limit": 10,
                "sort": "START_TIME_DESC",
                "flow_runs": {
                    "operator": "and_",
                    "expected_start_time": {"after_": week_ago, "before_": end},
                    "parent_task_run_id": not_subflow,
                },
            },
        ),
        (
            "runs list, failed + tag (flow_runs/paginate)",
            "POST",
            "flow_runs/paginate",
            {
                "page": 1,
                "limit": 10,
                "sort": "EXPECTED_START_TIME_DESC",
                "flow_runs": {
                    "operator": "and_",
                    "state": {"operator": "and_", "type": {"any_": ["FAILED", "CRASHED"]}},
                    "tags": {"operator": "and_", "all_": ["team-3"]},
                    "parent_task_run_id": not_subflow,
                },
            },
        ),
        ("flow run graph (graph-v2)", "GET", f"flow_runs/{graph_run}/graph-v2", None),
        (
            "flow run logs (logs/filter)",
            "POST",
            "logs/filter",
            {
                "logs": {"operator": "and_", "flow_run_id": {"any_": [graph_run]}, "level": {"ge_": 0}},
                "sort": "TIMESTAMP_ASC",
                "offset": 0,
                "limit": 200,
            },
        ),
        (
            "flow run task runs (task_runs/paginate)",
            "POST",
            "task_runs/paginate",
            {
                "page": 1,
                "limit": 10,
                "sort": "EXPECTED_START_TIME_DESC",
                "task_runs": {"operator": "and_", "flow_run_id": {"operator": "and_", "any_": [graph_run]}},
            },
        ),
        (
            "deployment's runs (flow_runs/paginate)",
            "POST",
            "flow_runs/paginate",
            {
                "page": 1,
                "limit": 10,
                "sort": "START_TIME_DESC",
                "deployments": {"operator": "and_", "id": {"any_": [deployment]}},
            },
        ),
        (
            "work pool's runs (flow_runs/paginate)",
            "POST",
            "flow_runs/paginate",
            {
                "page": 1,
                "limit": 10,
                "sort": "START_TIME_DESC",
                "work_pools": {"operator": "and_", "name": {"any_": ["pool-3"]}},
            },
        ),
        (
            "event feed (events/filter, last day)",
            "POST",
            "events/filter",
            {"filter": {"occurred": {"since": day_ago, "until": end}, "order": "DESC"}, "limit": 50},
        ),
        (
            "event feed of a flow run (events/filter, any_resource)",
            "POST",
            "events/filter",
            {
                "filter": {
                    "occurred": {"since": week_ago, "until": end},
                    "any_resource": {"id": [f"prefect.flow-run.{_uuid('fr', ws, 2)}"]},
                    "order": "DESC",
                },
                "limit": 50,
            },
        ),
        (
            "event feed of a flow (events/filter, related)",
            "POST",
            "events/filter",
            {
                "filter": {
                    "occurred": {"since": week_ago, "until": end},
                    "any_resource": {"id": [f"prefect.flow.{_uuid('flow', ws, 3)}"]},
                    "order": "DESC",
                },
                "limit": 50,
            },
        ),
    ]


def _uuid(kind: str, ws: int, n: int) -> str:
    import hashlib
    import uuid

    return str(uuid.UUID(hashlib.md5(f"{kind}:{ws}:{n}".encode()).hexdigest()))  # noqa: S324 - an id, not a secret


async def time_requests(target: Target, reqs, *, repeat: int, warmup: int = 3) -> dict:
    out: dict = {}
    async with http_client(target, timeout=300.0) as client:
        for label, method, path, body in reqs:
            latencies: list[float] = []
            statuses: Counter[str] = Counter()
            first_error = None
            size = None
            for i in range(warmup + repeat):
                t = time.perf_counter()
                try:
                    r = await (client.post(path, json=body) if method == "POST" else client.get(path))
                except httpx.TransportError as error:
                    # The server dropped the connection (Prefect's does when a statement times
                    # out): a failed request, timed until then.
                    took = time.perf_counter() - t
                    first_error = first_error or f"{type(error).__name__}: connection dropped"
                    if i >= warmup:
                        latencies.append(took)
                        statuses[type(error).__name__] += 1
                    continue
                took = time.perf_counter() - t
                if r.status_code >= 400 and first_error is None:
                    first_error = f"HTTP {r.status_code} {r.text[:300]}"
                if i < warmup:
                    continue
                latencies.append(took)
                statuses["ACCEPT" if r.status_code < 400 else f"HTTP {r.status_code}"] += 1
                size = len(r.content)
            fig = figures(latencies, statuses, sum(latencies))
            out[label] = {
                "p50_ms": fig["p50_ms"],
                "p95_ms": fig["p95_ms"],
                "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
                "ok": statuses.get("ACCEPT", 0),
                "requests": fig["requests"],
                "bytes": size,
            }
            if first_error:
                out[label]["first_error"] = first_error
            log(f"(i) {target.name}: {label}: p50 {fig['p50_ms']} ms, p95 {fig['p95_ms']} ms")
    return out


def run(
    targets: list[Target], *, scale: float, repeat: int, now: datetime | None = None, reuse: bool = False
) -> dict:
    size = sizes(scale)
    out: dict = {"scale": scale, "sizes": size, "other_workspaces": OTHER_WORKSPACES, "servers": {}}
    if reuse:
        # The rows an earlier run generated, and the time it generated them for (the requests ask
        # for windows relative to it).
        now = generated_at(targets)
        out["reused_generation_of"] = now.isoformat()
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    now_sql = f"'{now.isoformat()}'"
    for t in targets:
        if reuse and (rows := counts(t))["flow_runs"] >= size["flow_runs"]:
            log(f"(i) {t.name}: reusing {rows}")
            out["servers"][t.name] = {"generation": {"reused": True, "rows": rows}}
            continue
        log(f"(i) {t.name}: generating {size} (scale {scale})")
        try:
            gen = generate(t, size, now_sql)
            gen["rows"] = counts(t)
            log(f"(i) {t.name}: generated in {gen['total_s']}s: {gen}")
        except subprocess.CalledProcessError as exc:
            out["servers"][t.name] = {"error": f"generation: {exc.stderr[-2000:]}"}
            continue
        out["servers"][t.name] = {"generation": gen}
    reqs = requests(now, size)
    for t in targets:
        if "error" in out["servers"].get(t.name, {}):
            continue
        out["servers"][t.name]["requests"] = asyncio.run(time_requests(t, reqs, repeat=repeat))
    # After the requests: the sweeps change runs (a zombie run is crashed).
    for t in targets:
        if "error" in out["servers"].get(t.name, {}):
            continue
        log(f"(i) {t.name}: timing the sweeps")
        out["servers"][t.name]["sweeps"] = time_sweeps(t.name, t.env)
    return out


# --------------------------------------------------------------------------------------------------
# The sweeps on the big database: the scheduler's tick and the run sweeps, each called three times
# --------------------------------------------------------------------------------------------------

#: Ours: each sweep as its beat task calls it (it finds and changes the runs in the same call).
OURS_SWEEPS = r"""
import json, time
from orchestration.services.scheduler import scheduler_tick
from orchestration.services.lifecycle import (
    cancellation_cleanup, cancelling_runs_finish, expired_pauses_fail, late_runs_mark,
    zombie_runs_mark_crashed,
)
out = {}
for label, sweep in (
    ("scheduler tick", scheduler_tick), ("late runs", late_runs_mark),
    ("cancellation clean-up", cancellation_cleanup), ("stuck cancellations", cancelling_runs_finish),
    ("expired pauses", expired_pauses_fail), ("zombie runs", zombie_runs_mark_crashed),
):
    calls = []
    for _ in range(3):
        t = time.perf_counter(); result = sweep(); calls.append([round(time.perf_counter() - t, 4), result])
    out[label] = calls
print("BENCHJSON " + json.dumps(out, default=str))
"""

#: Prefect's: the perpetual functions its server runs every loop, called directly. Each selects the
#: runs to act on and hands each one to a docket task, which is recorded here and not run (the
#: selection is what every loop pays; a run found is changed by a task later).
PREFECT_SWEEPS = r"""
import asyncio, json, time
from prefect.server.database import provide_database_interface
from prefect.server.services.scheduler import schedule_deployments
from prefect.server.services.late_runs import monitor_late_runs
from prefect.server.services.cancellation_cleanup import (
    ensure_cancelling_timeout_checks, monitor_cancelled_flow_runs, monitor_subflow_runs,
)
from prefect.server.services.pause_expirations import monitor_expired_pauses


class RecordingDocket:
    def __init__(self):
        self.handed = 0

    def add(self, function, **options):
        async def schedule(*args, **kwargs):
            self.handed += 1
        return schedule

    replace = add


async def main():
    db = provide_database_interface()
    out = {}
    for label, sweep, needs_docket in (
        ("scheduler tick", schedule_deployments, False), ("late runs", monitor_late_runs, True),
        ("cancellation clean-up (cancelled runs' task runs)", monitor_cancelled_flow_runs, True),
        ("cancellation clean-up (subflows)", monitor_subflow_runs, True),
        ("stuck cancellations", ensure_cancelling_timeout_checks, True),
        ("expired pauses", monitor_expired_pauses, True),
    ):
        calls = []
        for _ in range(3):
            docket = RecordingDocket()
            t = time.perf_counter()
            await (sweep(docket=docket, db=db) if needs_docket else sweep())
            calls.append([round(time.perf_counter() - t, 4), docket.handed if needs_docket else None])
        out[label] = calls
    return out

print("BENCHJSON " + json.dumps(asyncio.run(main()), default=str))
"""


def time_sweeps(name: str, env: dict[str, str]) -> dict:
    """Each sweep called three times in a fresh process with the server's environment:
    ``{label: [[seconds, result], …]}`` (ours: what the call returned; Prefect's: runs handed to a
    docket task)."""
    code = PREFECT_SWEEPS if name == "prefect" else OURS_SWEEPS
    argv = [PY, "-c", code] if name == "prefect" else [PY, "manage.py", "shell", "-c", code]
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON ") :])
    return {"error": f"({out.returncode}) {out.stdout[-1500:]}\n{out.stderr[-3000:]}"}


def kept_database_env(name: str, db: str, *, redis_url: str) -> dict[str, str]:
    """The environment a sweep process needs for a database an earlier ``--keep`` run left."""
    if name == "prefect":
        return clean_env(
            PREFECT_HOME=tempfile.mkdtemp(prefix="bench-i-prefect-home-"),
            PREFECT_API_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        )
    return clean_env(
        DATABASE_URL=f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}",
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Time the scheduler's tick and the run sweeps on the databases a `run.py --only i --keep "
        "--db-prefix P` left (P_prefect, P_ours)."
    )
    parser.add_argument("--db-prefix", required=True)
    parser.add_argument("--servers", default="prefect,ours")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    result = {}
    for server in [s.strip() for s in args.servers.split(",") if s.strip()]:
        env = kept_database_env(server, f"{args.db_prefix}_{server}", redis_url=args.redis_url)
        log(f"(i) {server}: timing the sweeps")
        result[server] = time_sweeps(server, env)
        for label, calls in result[server].items():
            log(f"(i) {server}: {label}: {calls}")
    print(json.dumps(result, indent=2, default=str))
