"""Part (k): automations under a sustained event stream.

For each server: a paced burst of events with no automations (the ingest baseline), then
automations created over the automations API (reactive event triggers with thresholds, proactive
`after`/`expect` triggers whose windows must fire, compound triggers of two children) and the same
burst again, with the events that must make them fire mixed into it. Then it waits and counts, per
automation, the ``prefect.automation.triggered`` events against the count expected from what was
sent (and, for ours, the firing rows), and measures trigger-to-action latency: from the send time of
the triggering event to the ``occurred`` of the ``prefect.automation.action.executed`` event that
names it (``related`` role ``triggering-event``). For a proactive firing the latency is counted
from the end of its window (the trigger cannot fire before it), not from the event that opened it.

Expected counts (Prefect's ``evaluate``, which ours mirrors), computed from the events as they were
actually sent and stored (their ``occurred``, the send time), not from the schedule, since a sender
that falls behind stretches it:
- reactive, ``within: 0``, ``threshold: T``: every event counts, a firing empties the bucket, so
  ``n`` events fire ``n // T`` times (each gets ``T * m + T - 1`` events: the remainder must not
  fire) *as long as each bucket fills within a minute*. A ``within: 0`` bucket ends at its first
  event (``end = occurred + within``), and the sweep (Prefect's ``sweep_closed_buckets``) deletes a
  bucket 60 s (``EXPIRED_BUCKET_BUFFER``) after its end: at the first sweep after that, every 5 s
  in Prefect's server, every 60 s on ours (beat). So a bucket whose next event comes 60 s or more
  after the bucket's first one may have been swept, and its count starts again from 0. The
  expectation is a range: the sweep as late as it can come (``60 s + period`` after the bucket's
  first event) and as early (60 s after it, less the server's evaluation lag, the measured p95 of
  send → ``triggered``, since the sweep runs on the server's clock while events are evaluated
  later);
- proactive, ``after: started``, ``expect: finished``, ``for_each: prefect.resource.id``,
  ``within: 10 s``, ``threshold: 1``: one firing per resource that started and did not finish
  within 10 s of its start (a ``finished`` the sender sent later does not count in the window);
- compound ``require: all`` of two reactive children (event a, event b on one resource): a firing
  whenever both children have fired within its 30 s (a child's older firing is dropped), pairs
  spaced seconds apart and sent in order on one socket.

Every event id of a run starts with the run's 8 hex digits, so rows are counted in PostgreSQL by id
range (as part b does). Events for one resource always go over the same socket, in order.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import statistics
import subprocess
import time
import uuid
from datetime import UTC, datetime

import psycopg
from part_b import _open
from servers import PY, ROOT, Target, dsn, log
from wire import http_client

CHECKPOINT_EVERY = 700
PROACTIVE_WITHIN_S = 10.0
COMPOUND_WITHIN_S = 30.0
REACTIVE_THRESHOLDS = (1, 3, 10, 25)
REACTIVE_FIRINGS = 6  # firings each reactive automation must make
PROACTIVE_KEYS = 4  # resources started per proactive automation; half of them finish
COMPOUND_PAIRS = 5
#: Prefect's ``PREFECT_EVENTS_EXPIRED_BUCKET_BUFFER`` (ours the same): a bucket is swept this long
#: after its end.
EXPIRED_BUCKET_BUFFER_S = 60.0
#: How often each server sweeps: Prefect's triggers service every periodic evaluation (5 s), ours
#: on the beat schedule (60 s).
SWEEP_PERIOD_S = {"prefect": 5.0, "ours": 60.0}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _event_id(tag: str) -> str:
    return str(uuid.UUID(tag + uuid.uuid4().hex[8:]))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return round(values[k] * 1000, 1)


# --------------------------------------------------------------------------------------------------
# The plan: automations and the events that must fire them
# --------------------------------------------------------------------------------------------------


def plan(tag: str, *, n_automations: int, spaces: int, seconds: float) -> tuple[list[dict], list[tuple]]:
    """Automations (with ``space`` and ``expected``) and the targeted events as
    ``(t_offset, space, resource_key, event_name, role)`` where role marks a compound's closing
    event or a proactive start (for latency)."""
    n_pro = max(1, n_automations // 10)
    n_comp = max(1, n_automations // 10)
    n_react = max(1, n_automations - n_pro - n_comp)
    rng = random.Random(tag)  # noqa: S311 - a reproducible schedule, not a secret
    autos: list[dict] = []
    events: list[tuple] = []
    do_nothing = [{"type": "do-nothing"}]
    for i in range(n_react):
        t = REACTIVE_THRESHOLDS[i % len(REACTIVE_THRESHOLDS)]
        n = t * REACTIVE_FIRINGS + t - 1
        res = f"bench.k.{tag}.r{i}"
        autos.append(
            {
                "kind": "reactive",
                "space": i % spaces,
                "expected": n // t,
                "threshold": t,
                "resource": res,
                "body": {
                    "name": f"bench-k reactive {i} (threshold {t})",
                    "trigger": {
                        "type": "event",
                        "posture": "Reactive",
                        "match": {"prefect.resource.id": res},
                        "expect": ["bench.k.tick"],
                        "threshold": t,
                        "within": 0,
                    },
                    "actions": do_nothing,
                },
            }
        )
        for _ in range(n):
            events.append((rng.uniform(0, seconds * 0.95), i % spaces, res, "bench.k.tick", None))
    for j in range(n_pro):
        space = j % spaces
        started, finished = f"bench.k.{tag}.p{j}.started", f"bench.k.{tag}.p{j}.finished"
        autos.append(
            {
                "kind": "proactive",
                "space": space,
                "expected": PROACTIVE_KEYS - PROACTIVE_KEYS // 2,
                "resources": [f"bench.k.{tag}.p{j}.{k}" for k in range(PROACTIVE_KEYS)],
                "started": started,
                "finished": finished,
                "body": {
                    "name": f"bench-k proactive {j}",
                    "trigger": {
                        "type": "event",
                        "posture": "Proactive",
                        "match": {"prefect.resource.id": f"bench.k.{tag}.p{j}.*"},
                        "after": [started],
                        "expect": [finished],
                        "for_each": ["prefect.resource.id"],
                        "threshold": 1,
                        "within": PROACTIVE_WITHIN_S,
                    },
                    "actions": do_nothing,
                },
            }
        )
        for k in range(PROACTIVE_KEYS):
            res = f"bench.k.{tag}.p{j}.{k}"
            t0 = rng.uniform(0, seconds * 0.5)
            events.append((t0, space, res, started, "proactive-start"))
            if k % 2 == 0:  # these finish within their window: no firing
                events.append((t0 + 2.0, space, res, finished, None))
    for c in range(n_comp):
        space = c % spaces
        res = f"bench.k.{tag}.c{c}"
        children = [
            {
                "type": "event",
                "posture": "Reactive",
                "match": {"prefect.resource.id": res},
                "expect": [name],
                "threshold": 1,
                "within": 0,
            }
            for name in ("bench.k.a", "bench.k.b")
        ]
        autos.append(
            {
                "kind": "compound",
                "space": space,
                "expected": COMPOUND_PAIRS,
                "resource": res,
                "body": {
                    "name": f"bench-k compound {c}",
                    "trigger": {
                        "type": "compound",
                        "require": "all",
                        "within": COMPOUND_WITHIN_S,
                        "triggers": children,
                    },
                    "actions": do_nothing,
                },
            }
        )
        step = seconds * 0.9 / COMPOUND_PAIRS
        for p in range(COMPOUND_PAIRS):
            t0 = p * step + rng.uniform(0, step / 4)
            events.append((t0, space, res, "bench.k.a", None))
            events.append((t0 + 0.2, space, res, "bench.k.b", None))
    return autos, events


# --------------------------------------------------------------------------------------------------
# What must fire, from the events as sent
# --------------------------------------------------------------------------------------------------


def _reactive_firings(times: list[float], threshold: int, swept_after: float) -> tuple[int, int]:
    """Prefect's ``evaluate`` for a ``within: 0`` trigger over events at ``times`` (sorted), with
    a bucket deleted by the sweep once an event comes ``swept_after`` seconds or more after the
    bucket's end (its first event). Returns (firings, buckets swept before they filled)."""
    fired = swept = count = 0
    end = None
    for t in times:
        if end is not None and t - end >= swept_after:
            swept += 1
            count, end = 0, None
        if end is None:
            end = t  # a new bucket: [t - 15 min, t + within), within 0
        count += 1
        if count >= threshold:
            fired += 1
            count, end = 0, None
    return fired, swept


def _compound_firings(children: list[tuple[float, str]], within: float) -> int:
    """Prefect's ``evaluate_composite_trigger`` for ``require: all`` of two children that fire on
    every event: the latest firing of each child, older than ``within`` dropped, both consumed."""
    latest: dict[str, float] = {}
    fired = 0
    for t, child in sorted(children):
        latest = {c: at for c, at in latest.items() if at >= t - within}
        latest[child] = t
        if len(latest) == 2:
            fired += 1
            latest = {}
    return fired


def expected_firings(autos: list[dict], sent_at: dict, *, sweep_period: float, lag: float) -> None:
    """Sets ``expected_lo``/``expected_hi`` (and ``why`` where it differs from the schedule's
    ``expected``) on each automation, from the events as sent (see the module docstring)."""
    sends: dict[str, list[tuple[float, str]]] = {}
    for at, _role, res, name in sent_at.values():
        sends.setdefault(res, []).append((at, name))
    for a in autos:
        if a["kind"] == "reactive":
            times = sorted(at for at, _ in sends.get(a["resource"], []))
            early = _reactive_firings(times, a["threshold"], EXPIRED_BUCKET_BUFFER_S - lag)
            late = _reactive_firings(times, a["threshold"], EXPIRED_BUCKET_BUFFER_S + sweep_period)
            a["expected_lo"], a["expected_hi"] = sorted((early[0], late[0]))
            if (a["expected_lo"], a["expected_hi"]) != (a["expected"], a["expected"]):
                scheduled = a["threshold"] * REACTIVE_FIRINGS + a["threshold"] - 1
                why = [f"{len(times)} of its {scheduled} events sent and stored"]
                if times:
                    why.append(f"over {times[-1] - times[0]:.0f} s")
                if early[1] or late[1]:
                    why.append(
                        f"{late[1]}-{early[1]} bucket(s) waited 60 s or more for their next event"
                        " and may have been swept before they filled"
                    )
                a["why"] = ", ".join(why)
        elif a["kind"] == "proactive":
            fired = 0
            for res in a["resources"]:
                started = [at for at, name in sends.get(res, []) if name == a["started"]]
                finished = [at for at, name in sends.get(res, []) if name == a["finished"]]
                if started and not any(started[0] <= f < started[0] + PROACTIVE_WITHIN_S for f in finished):
                    fired += 1
            a["expected_lo"] = a["expected_hi"] = fired
            if fired != a["expected"]:
                a["why"] = (
                    f"{fired - a['expected']} 'finished' event(s) sent {PROACTIVE_WITHIN_S:.0f} s or more after their start"
                )
        else:
            children = [(at, name) for at, name in sends.get(a["resource"], [])]
            a["expected_lo"] = a["expected_hi"] = fired = _compound_firings(children, COMPOUND_WITHIN_S)
            if fired != a["expected"]:
                a["why"] = f"pairs sent {COMPOUND_WITHIN_S:.0f} s or more apart"


# --------------------------------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------------------------------


async def _send_paced(ws, frames: list[tuple], t0: float, tag: str, stats: dict, sent_at: dict) -> None:
    """``frames``: (t_offset, resource, event_name, role), sorted. Each is sent at t0 + offset (or as
    soon as the socket lets us), with ``occurred`` = its send time."""
    sent = 0
    lag_max = 0.0
    try:
        for offset, res, name, role in frames:
            due = t0 + offset
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag_max = max(lag_max, -delay)
            eid = _event_id(tag)
            now = time.time()
            await ws.send(
                json.dumps(
                    {
                        "id": eid,
                        "occurred": _iso(now),
                        "event": name,
                        "resource": {"prefect.resource.id": res},
                        "related": [],
                        "payload": {},
                    },
                    separators=(",", ":"),
                )
            )
            if role != "noise":
                sent_at[eid] = (now, role, res, name)
            sent += 1
            if sent % CHECKPOINT_EVERY == 0:
                await asyncio.wait_for(await ws.ping(), 60)
        await asyncio.wait_for(await ws.ping(), 120)
    except Exception as exc:
        stats["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        stats["t_end"] = time.time()
        stats["sent"] = sent
        stats["max_behind_s"] = round(lag_max, 3)
        try:
            await ws.close()
        except Exception as exc:  # noqa: BLE001
            stats.setdefault("close_error", repr(exc))


async def _count_tagged(conn, table: str, tag: str) -> int:
    lo, hi = f"{tag}-0000-0000-0000-000000000000", f"{tag}-ffff-ffff-ffff-ffffffffffff"
    cur = await conn.execute(f"SELECT count(*) FROM {table} WHERE id BETWEEN %s AND %s", (lo, hi))  # noqa: S608
    return int((await cur.fetchone())[0])


async def burst(
    target: Target,
    spaces: list[dict],
    *,
    rate: float,
    seconds: float,
    connections: int,
    targeted: list[tuple],
    settle: float = 30.0,
) -> tuple[dict, dict]:
    """Send ``rate * seconds`` events (the targeted ones plus noise matching nothing), paced, over
    ``connections`` sockets dealt to the spaces; wait until every one is in the database."""
    tag = secrets.token_hex(4)
    total = int(rate * seconds)
    n_sockets = max(connections, len(spaces))
    sock_space = [i % len(spaces) for i in range(n_sockets)]
    by_space: dict[int, list[int]] = {}
    for i, s in enumerate(sock_space):
        by_space.setdefault(s, []).append(i)
    per_sock: list[list[tuple]] = [[] for _ in range(n_sockets)]
    for offset, space, res, name, role in targeted:
        socks = by_space[space]
        per_sock[socks[hash(res) % len(socks)]].append((offset, res, name, role or "target"))
    n_noise = max(0, total - len(targeted))
    for i in range(n_noise):
        # noise: spread evenly in time and over every socket, matching no automation
        per_sock[i % n_sockets].append(
            (i * seconds / max(1, n_noise), f"bench.k.{tag}.noise{i % 97}", "bench.k.noise", "noise")
        )
    for frames in per_sock:
        frames.sort(key=lambda f: f[0])
    sent_at: dict[str, tuple[float, str, str, str]] = {}
    result: dict = {"tag": tag, "planned": total, "targeted": len(targeted), "sockets": n_sockets}
    async with await psycopg.AsyncConnection.connect(dsn(target.db), autocommit=True) as conn:
        sockets = []
        for i in range(n_sockets):
            space = spaces[sock_space[i]]
            sockets.append(await _open(_space_target(target, space)))
        stats = [{} for _ in range(n_sockets)]
        t0 = time.time() + 0.5
        senders = [
            asyncio.create_task(_send_paced(ws, frames, t0, tag, st, sent_at))
            for ws, frames, st in zip(sockets, per_sock, stats, strict=True)
        ]
        t_persisted = None
        last, last_change = -1, time.time()
        while True:
            await asyncio.sleep(0.5)
            n = await _count_tagged(conn, target.events_table, tag)
            now = time.time()
            if n != last:
                last, last_change = n, now
            done = all(s.done() for s in senders)
            if done and n >= sum(st.get("sent", 0) for st in stats):
                t_persisted = now
                break
            if done and now - last_change > settle:
                break
        await asyncio.gather(*senders, return_exceptions=True)
    sent = sum(st.get("sent", 0) for st in stats)
    t_send_end = max(st.get("t_end", t0) for st in stats)
    result.update(
        {
            "sent": sent,
            "send_s": round(t_send_end - t0, 2),
            "send_rate_eps": round(sent / (t_send_end - t0), 1),
            "max_behind_schedule_s": max(st.get("max_behind_s", 0) for st in stats),
            "in_db": last,
            "lost": sent - last,
            "all_in_db_after_s": round(t_persisted - t0, 2) if t_persisted else None,
            "drain_after_last_send_s": round(t_persisted - t_send_end, 2) if t_persisted else None,
            "persisted_rate_eps": round(sent / (t_persisted - t0), 1) if t_persisted else None,
        }
    )
    errors = [st["error"] for st in stats if "error" in st]
    if errors:
        result["send_errors"] = errors[:3]
    result["t0"] = t0
    return result, sent_at


def _space_target(target: Target, space: dict) -> Target:
    if space.get("ws_in_url") == target.ws_in_url:
        return target
    from dataclasses import replace

    return replace(target, api_url=space["api_url"], ws_in_url=space["ws_in_url"])


# --------------------------------------------------------------------------------------------------
# Setup and counting
# --------------------------------------------------------------------------------------------------


def _our_spaces(target: Target, n: int) -> list[dict]:
    """Ours: the bootstrap workspace plus ``n - 1`` more in the same account, with the same key."""
    spaces = [{"api_url": target.api_url, "ws_in_url": target.ws_in_url}]
    for i in range(1, n):
        boot = subprocess.run(
            [
                PY,
                "manage.py",
                "bootstrap",
                "--account",
                target.info["account_name"],
                "--workspace",
                f"Bench k{i}",
                "--owner",
                target.info["owner"],
                "--reuse-key",
                target.api_key,
                "--json",
            ],
            cwd=ROOT,
            env=target.env,
            capture_output=True,
            text=True,
            check=True,
        )
        info = json.loads(boot.stdout)
        api_url = info["api_url"]
        spaces.append(
            {"api_url": api_url, "ws_in_url": api_url.replace("http://", "ws://", 1) + "/events/in"}
        )
    return spaces


async def _create_automations(target: Target, spaces: list[dict], autos: list[dict]) -> None:
    for a in autos:
        space = spaces[a["space"]]
        async with http_client(_space_target(target, space), timeout=30) as client:
            r = await client.post("automations/", json={"description": "", "enabled": True, **a["body"]})
            if r.status_code not in (200, 201):
                raise RuntimeError(
                    f"create automation {a['body']['name']}: HTTP {r.status_code} {r.text[:500]}"
                )
            a["id"] = r.json()["id"]


async def _collect(conn, target: Target, since: float) -> list[tuple]:
    cur = await conn.execute(
        "SELECT event, resource_id, extract(epoch from occurred)::float8, related::text"  # noqa: S608
        f" FROM {target.events_table} WHERE event IN ('prefect.automation.triggered',"
        " 'prefect.automation.action.executed', 'prefect.automation.action.failed')"
        " AND occurred >= to_timestamp(%s)",
        (since - 5,),
    )
    return await cur.fetchall()


def _triggering_event(related_text: str) -> str | None:
    for r in json.loads(related_text or "[]"):
        if r.get("prefect.resource.role") == "triggering-event":
            return r["prefect.resource.id"].removeprefix("prefect.event.")
    return None


async def run_target(
    target: Target,
    *,
    rate: float,
    seconds: float,
    n_automations: int,
    workspaces: int,
    connections: int,
    max_wait: float,
) -> dict:
    out: dict = {}
    n_spaces = workspaces if target.name == "ours" else 1
    log(f"(k) {target.name}: {n_spaces} workspace(s)")
    spaces = (
        _our_spaces(target, n_spaces)
        if target.name == "ours"
        else [{"api_url": target.api_url, "ws_in_url": target.ws_in_url}]
    )
    out["workspaces"] = len(spaces)

    log(f"(k) {target.name}: baseline burst, no automations ({rate:.0f} ev/s for {seconds:.0f} s)")
    base, _ = await burst(target, spaces, rate=rate, seconds=seconds, connections=connections, targeted=[])
    base.pop("t0", None)
    out["baseline"] = base
    log(f"(k) {target.name}: baseline {base}")

    tag = secrets.token_hex(4)
    autos, targeted = plan(tag, n_automations=n_automations, spaces=len(spaces), seconds=seconds)
    t_create = time.perf_counter()
    await _create_automations(target, spaces, autos)
    out["automations"] = {
        k: sum(1 for a in autos if a["kind"] == k) for k in ("reactive", "proactive", "compound")
    }
    out["create_s"] = round(time.perf_counter() - t_create, 2)
    await asyncio.sleep(2.0)  # ours remembers a workspace's automations for a second per process

    log(f"(k) {target.name}: burst with {len(autos)} automations, {len(targeted)} targeted events")
    res, sent_at = await burst(
        target, spaces, rate=rate, seconds=seconds, connections=connections, targeted=targeted
    )
    t0 = res.pop("t0")
    out["with_automations"] = res
    log(f"(k) {target.name}: burst {res}")

    # What must fire is what the server got: a targeted event written to a socket that then broke
    # (the server never confirmed or stored it) counts for nothing.
    async with await psycopg.AsyncConnection.connect(dsn(target.db), autocommit=True) as conn:
        cur = await conn.execute(
            f"SELECT id::text FROM {target.events_table} WHERE id = ANY(%s::uuid[])",  # noqa: S608
            (list(sent_at),),
        )
        stored = {row[0] for row in await cur.fetchall()}
    res["targeted_not_stored"] = len(sent_at) - len(stored)
    sent_at = {eid: sent for eid, sent in sent_at.items() if eid in stored}
    expected = {f"prefect.automation.{a['id']}": a for a in autos}
    sweep_period = SWEEP_PERIOD_S.get(target.name, 5.0)
    expected_firings(autos, sent_at, sweep_period=sweep_period, lag=0.0)
    total_expected = sum(a["expected_lo"] for a in autos)
    t_wait = time.time()
    # The last proactive window ends PROACTIVE_WITHIN_S after its start event, then a 5 s loop.
    min_wait = PROACTIVE_WITHIN_S + 12.0
    stable_since, last_sig = time.time(), None
    async with await psycopg.AsyncConnection.connect(dsn(target.db), autocommit=True) as conn:
        while True:
            await asyncio.sleep(2.0)
            rows = await _collect(conn, target, t0)
            triggered = sum(1 for r in rows if r[0] == "prefect.automation.triggered" and r[1] in expected)
            executed = sum(1 for r in rows if r[0] != "prefect.automation.triggered" and r[1] in expected)
            sig = (triggered, executed)
            now = time.time()
            if sig != last_sig:
                last_sig, stable_since = sig, now
            if (
                now - t_wait >= min_wait
                and triggered >= total_expected
                and executed >= triggered
                and now - stable_since >= 10
            ):
                break
            if now - stable_since >= 45 or now - t_wait > max_wait:
                break
        out["waited_after_burst_s"] = round(time.time() - t_wait, 1)
        rows = await _collect(conn, target, t0)
        firing_rows = None
        if target.name == "ours":
            cur = await conn.execute(
                "SELECT automation_id::text, count(*) FROM orchestration_automationfiring"
                " WHERE triggered >= to_timestamp(%s) GROUP BY 1",
                (t0 - 5,),
            )
            firing_rows = {f"prefect.automation.{a}": int(n) for a, n in await cur.fetchall()}

    per: dict[str, dict] = {rid: {"triggered": 0, "executed": 0, "failed": 0} for rid in expected}
    lat: dict[str, list[float]] = {"reactive": [], "compound": [], "proactive": []}
    to_trigger: list[float] = []  # send -> the triggered event (evaluation), reactive and compound
    to_action: list[float] = []  # the triggered event -> its action's executed (hand-off and action)
    triggered_at: dict[tuple[str, str | None], float] = {}
    for event, rid, occurred, related in rows:
        if rid in per and event == "prefect.automation.triggered":
            triggered_at[(rid, _triggering_event(related))] = occurred
    for event, rid, occurred, related in rows:
        if rid not in per:
            continue
        if event == "prefect.automation.triggered":
            per[rid]["triggered"] += 1
            eid = _triggering_event(related)
            if eid in sent_at and expected[rid]["kind"] != "proactive":
                to_trigger.append(occurred - sent_at[eid][0])
            continue
        per[rid]["executed" if event.endswith("executed") else "failed"] += 1
        kind = expected[rid]["kind"]
        eid = _triggering_event(related)
        if (rid, eid) in triggered_at:
            to_action.append(occurred - triggered_at[(rid, eid)])
        if eid in sent_at:
            sent = sent_at[eid][0]
            if kind == "proactive":
                lat[kind].append(occurred - (sent + PROACTIVE_WITHIN_S))
            else:
                lat[kind].append(occurred - sent)
    # The sweep runs on the server's clock while an event is evaluated when the server gets to it:
    # the later the evaluation, the earlier (in the events' time) a bucket may be gone.
    lag = (_pct(to_trigger, 0.95) or 0.0) / 1000
    expected_firings(autos, sent_at, sweep_period=sweep_period, lag=lag)
    missing = doubled = 0
    wrong: list[dict] = []
    for rid, a in expected.items():
        got = per[rid]["triggered"]
        if not a["expected_lo"] <= got <= a["expected_hi"]:
            missing += max(0, a["expected_lo"] - got)
            doubled += max(0, got - a["expected_hi"])
            wrong.append(
                {
                    "automation": a["body"]["name"],
                    "expected": [a["expected_lo"], a["expected_hi"]],
                    "triggered": got,
                    "firing_rows": (firing_rows or {}).get(rid),
                    "why": a.get("why"),
                }
            )
    lo, hi = sum(a["expected_lo"] for a in autos), sum(a["expected_hi"] for a in autos)
    out["firings"] = {
        "expected": lo if lo == hi else [lo, hi],
        "expected_by_schedule": sum(a["expected"] for a in autos),
        "why_expected_differs": [
            {
                "automation": a["body"]["name"],
                "expected": [a["expected_lo"], a["expected_hi"]],
                "by_schedule": a["expected"],
                "triggered": per[f"prefect.automation.{a['id']}"]["triggered"],
                "why": a["why"],
            }
            for a in autos
            if "why" in a
        ][:20],  # fmt: skip
        "expectation": (
            f"from the events as sent; a within-0 bucket swept {EXPIRED_BUCKET_BUFFER_S:.0f} s after its"
            f" first event, by a sweep every {sweep_period:.0f} s, evaluation lag (p95) {lag:.1f} s"
        ),
        "triggered": sum(p["triggered"] for p in per.values()),
        "actions_executed": sum(p["executed"] for p in per.values()),
        "actions_failed": sum(p["failed"] for p in per.values()),
        "missing": missing,
        "extra": doubled,
        "wrong": sorted(wrong, key=lambda w: w["triggered"] <= w["expected"][1])[:20],  # doubled first
    }
    if firing_rows is not None:
        out["firings"]["firing_rows"] = sum(firing_rows.get(rid, 0) for rid in expected)
    reactive = lat["reactive"] + lat["compound"]
    out["latency_ms"] = {
        "reactive_and_compound": {
            "n": len(reactive),
            "p50": _pct(reactive, 0.5),
            "p95": _pct(reactive, 0.95),
            "max": _pct(reactive, 1.0),
        },
        "send_to_triggered": {
            "n": len(to_trigger),
            "p50": _pct(to_trigger, 0.5),
            "p95": _pct(to_trigger, 0.95),
            "max": _pct(to_trigger, 1.0),
        },
        "triggered_to_executed": {
            "n": len(to_action),
            "p50": _pct(to_action, 0.5),
            "p95": _pct(to_action, 0.95),
            "max": _pct(to_action, 1.0),
        },
        "proactive_after_window_end": {
            "n": len(lat["proactive"]),
            "p50": _pct(lat["proactive"], 0.5),
            "p95": _pct(lat["proactive"], 0.95),
            "max": _pct(lat["proactive"], 1.0),
        },
    }
    if base.get("persisted_rate_eps") and res.get("persisted_rate_eps"):
        out["ingest_ratio_with_vs_without"] = round(res["persisted_rate_eps"] / base["persisted_rate_eps"], 3)
    if reactive:
        out["latency_ms"]["reactive_and_compound"]["mean"] = round(statistics.mean(reactive) * 1000, 1)
    return out


def run(
    targets: list[Target],
    *,
    rate: float,
    seconds: float,
    n_automations: int,
    workspaces: int,
    connections: int,
    max_wait: float = 600.0,
) -> dict:
    out: dict = {
        "rate": rate,
        "seconds": seconds,
        "automations": n_automations,
        "workspaces_ours": workspaces,
        "servers": {},
    }
    for t in targets:
        try:
            res = asyncio.run(
                run_target(
                    t,
                    rate=rate,
                    seconds=seconds,
                    n_automations=n_automations,
                    workspaces=workspaces,
                    connections=connections,
                    max_wait=max_wait,
                )
            )
        except Exception as exc:
            res = {"error": f"{type(exc).__name__}: {exc}"}
        out["servers"][t.name] = res
        log(f"(k) {t.name}: {json.dumps({k: v for k, v in res.items() if k != 'wrong'}, default=str)}")
    return out
