"""Part (b): a burst of task-run events over concurrent ``/events/in`` websockets, then the time until
every event and every task run is in the database, and how many never arrive."""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from datetime import timedelta

import psycopg
from psycopg import sql
from servers import Target, dsn, log
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from wire import create_flow_runs, now_utc, task_run_events

CHECKPOINT_EVERY = 700  # the client pings and awaits the pong after this many unconfirmed events
TASKS_PER_FLOW_RUN = 40


def _tag_range(tag: str) -> tuple[str, str]:
    return f"{tag}-0000-0000-0000-000000000000", f"{tag}-ffff-ffff-ffff-ffffffffffff"


async def _counts(conn: psycopg.AsyncConnection, target: Target, tag: str) -> tuple[int, int, int]:
    lo, hi = _tag_range(tag)
    query = sql.SQL(
        "SELECT (SELECT count(*) FROM {ev} WHERE id BETWEEN %(lo)s AND %(hi)s),"
        " (SELECT count(*) FROM {tr} WHERE id BETWEEN %(lo)s AND %(hi)s),"
        " (SELECT count(*) FROM {tr} WHERE id BETWEEN %(lo)s AND %(hi)s AND state_type = 'COMPLETED')"
    ).format(ev=sql.Identifier(target.events_table), tr=sql.Identifier(target.task_run_table))
    cur = await conn.execute(query, {"lo": lo, "hi": hi})
    row = await cur.fetchone()
    return int(row[0]), int(row[1]), int(row[2])


async def _open(target: Target):
    if target.ws_cloud_mode:
        # PrefectCloudEventsClient: no subprotocol, no auth frame, key in the upgrade header.
        ws = await connect(
            target.ws_in_url,
            additional_headers={"Authorization": f"bearer {target.api_key}"},
            max_size=None,
            open_timeout=30,
            ping_interval=None,
        )
        await (await ws.ping())
        return ws
    ws = await connect(
        target.ws_in_url, subprotocols=["prefect"], max_size=None, open_timeout=30, ping_interval=None
    )
    await (await ws.ping())
    await ws.send(json.dumps({"type": "auth", "token": None}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
    if reply.get("type") != "auth_success":
        raise RuntimeError(f"auth failed: {reply}")
    return ws


async def _send_all(ws, frames: list[str], start: asyncio.Event, stats: dict) -> None:
    await start.wait()
    sent = 0
    try:
        for frame in frames:
            await ws.send(frame)
            sent += 1
            if sent % CHECKPOINT_EVERY == 0:
                await asyncio.wait_for(await ws.ping(), 60)
        await asyncio.wait_for(await ws.ping(), 120)
        stats["t_end"] = time.perf_counter()
    except Exception as exc:
        stats["error"] = f"{type(exc).__name__}: {exc}"
        stats["t_end"] = time.perf_counter()
    finally:
        stats["sent"] = sent
        try:
            await ws.close()
        except Exception as exc:  # noqa: BLE001
            stats.setdefault("close_error", repr(exc))


async def run_target(
    target: Target, *, n_events: int, connections: int, settle: float, max_wait: float
) -> dict:
    tag = secrets.token_hex(4)
    n_tasks = math.ceil(n_events / 3)
    n_flow_runs = max(connections, math.ceil(n_tasks / TASKS_PER_FLOW_RUN))
    result: dict = {"tag": tag, "connections": connections, "task_runs": n_tasks, "events": n_tasks * 3}
    log(f"(b) {target.name}: creating {n_flow_runs} flow runs")
    try:
        flow_id, runs = await create_flow_runs(target, "bench-events", n_flow_runs)
    except Exception as exc:
        result["error"] = f"setup (flow runs): {exc}"
        return result

    # Pre-serialise every frame: the flow runs are dealt to the connections like concurrent flows.
    base = now_utc() - timedelta(seconds=5)
    per_conn: list[list[str]] = [[] for _ in range(connections)]
    for i in range(n_tasks):
        fr_index = i % n_flow_runs
        run = runs[fr_index]
        events = task_run_events(
            tag,
            flow_run=run,
            flow_name="bench-events",
            flow_id=flow_id,
            start=base + timedelta(microseconds=3000 * i),
            index=i,
        )
        per_conn[fr_index % connections].extend(json.dumps(e, separators=(",", ":")) for e in events)
    total = sum(len(f) for f in per_conn)

    async with await psycopg.AsyncConnection.connect(dsn(target.db), autocommit=True) as conn:
        try:
            await _counts(conn, target, tag)
        except Exception as exc:
            result["error"] = f"cannot count rows in {target.events_table}/{target.task_run_table}: {exc}"
            return result
        try:
            sockets = await asyncio.gather(*(_open(target) for _ in range(connections)))
        except InvalidStatus as exc:
            body = (exc.response.body or b"").decode("utf-8", "replace")[:1000]
            result["error"] = f"websocket upgrade refused: HTTP {exc.response.status_code} {body}"
            return result
        except Exception as exc:
            result["error"] = f"websocket connect/auth failed: {type(exc).__name__}: {exc}"
            return result

        start = asyncio.Event()
        stats = [{} for _ in range(connections)]
        senders = [
            asyncio.create_task(_send_all(ws, frames, start, st))
            for ws, frames, st in zip(sockets, per_conn, stats, strict=True)
        ]
        log(f"(b) {target.name}: sending {total} events over {connections} websockets")
        t0 = time.perf_counter()
        start.set()

        timeline: list[tuple[float, int, int, int]] = []
        t_events_done = t_tasks_done = None
        last_progress = time.perf_counter()
        last = (-1, -1, -1)
        while True:
            await asyncio.sleep(0.5)
            counts = await _counts(conn, target, tag)
            now = time.perf_counter()
            timeline.append((round(now - t0, 2), *counts))
            if counts != last:
                last_progress = now
                last = counts
            if t_events_done is None and counts[0] >= total:
                t_events_done = now
            if t_tasks_done is None and counts[2] >= n_tasks:
                t_tasks_done = now
            senders_done = all(s.done() for s in senders)
            if senders_done and t_events_done and t_tasks_done:
                break
            if senders_done and now - last_progress > settle:
                break
            if now - t0 > max_wait:
                break
        for s in senders:
            if not s.done():
                s.cancel()
        await asyncio.gather(*senders, return_exceptions=True)

    t_send_end = max(s.get("t_end", t0) for s in stats)
    sent = sum(s.get("sent", 0) for s in stats)
    send_s = t_send_end - t0
    events_in_db, task_runs_in_db, completed = last
    result.update(
        {
            "sent": sent,
            "send_s": round(send_s, 3),
            "send_rate_eps": round(sent / send_s, 1) if send_s > 0 else None,
            "events_persisted_s": round(t_events_done - t0, 3) if t_events_done else None,
            "task_runs_completed_s": round(t_tasks_done - t0, 3) if t_tasks_done else None,
            "events_in_db": events_in_db,
            "task_runs_in_db": task_runs_in_db,
            "task_runs_completed_in_db": completed,
            "events_lost": total - events_in_db,
            "task_runs_lost": n_tasks - task_runs_in_db,
            "task_runs_not_completed": n_tasks - completed,
            "settle_s": settle,
            "timeline": timeline[:: max(1, len(timeline) // 200)],
        }
    )
    done = [t for t in (t_events_done, t_tasks_done) if t]
    if len(done) == 2:
        e2e = max(done) - t0
        result["e2e_s"] = round(e2e, 3)
        result["e2e_rate_eps"] = round(total / e2e, 1)
    else:
        result["e2e_s"] = None
        result["e2e_rate_eps"] = None
    errors = [s["error"] for s in stats if "error" in s]
    if errors:
        result["send_errors"] = errors
    return result


def run(targets: list[Target], *, n_events: int, connections: int, settle: float, max_wait: float) -> dict:
    out: dict = {"servers": {}}
    for t in targets:
        res = asyncio.run(
            run_target(t, n_events=n_events, connections=connections, settle=settle, max_wait=max_wait)
        )
        out["servers"][t.name] = res
        short = {k: v for k, v in res.items() if k != "timeline"}
        log(f"(b) {t.name}: {short}")
    return out
