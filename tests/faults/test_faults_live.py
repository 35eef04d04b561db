"""Faults a deployment meets, each asserting what survived.

A deployment of its own (``harness.Stack``: web and worker processes as production starts them,
its own PostgreSQL database and a private Redis) is driven by the unmodified ``prefect`` client
while one of its parts fails:

* every backend of its database terminated again and again;
* its Redis killed and restarted mid-run;
* its web process killed with SIGKILL in the middle of a burst of ``set_state`` calls, then started
  again;
* its Celery worker killed with SIGKILL in the middle of an automation's actions, then another
  started: the task is delivered again and each action has run once.

Each asserts: the server answered only 2xx/4xx and 503 (never a 500, no exception escaped the ASGI
application), the client finished its flow runs, every event it emitted is stored exactly once and
every log it shipped exactly once, and no run's state history is half-written. Nothing here touches
the suite's own database, Redis or live server.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.faults.harness import CLIENTS, Stack, client_result, postgres_server, wait_for

pytestmark = pytest.mark.faults

CONTENTION = Path(__file__).resolve().parents[1] / "live" / "flows" / "contention_clients.py"
LOGS_PER_RUN = 6  # contention_clients.py: three logs after Running, three after Completed
RUNS = 24  # flow runs of the set_state burst


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    server = postgres_server()
    if server is None:
        pytest.skip("terminating backends and a database of their own need PostgreSQL")
    deployment = Stack(tmp_path_factory.mktemp("faults"), server)
    if deployment.redis.binary is None:
        pytest.skip("redis-server is not installed")
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


def _contention(stack: Stack, seconds: float):
    return stack.start_client(
        CONTENTION,
        {
            "CONTENTION_SECONDS": seconds,
            "FLOW_CLIENTS": 4,
            "LIMIT_USERS": 2,
            "EVENT_CLIENTS": 2,
            "LIMIT_NAME": f"faults-{time.monotonic_ns()}",
        },
    )


def _assert_only_retryable_failures(stack: Stack, mark: int) -> dict:
    statuses, errors = stack.answers(mark)
    assert statuses, "the web process logged no request"
    assert {s for s in statuses if s >= 500} <= {503}, (dict(statuses), errors[:5])
    assert not [line for line in errors if "Exception in ASGI application" in line], errors[:5]
    return dict(statuses)


def _assert_nothing_lost(stack: Stack, result: dict, described: str) -> None:
    assert "error" not in result, described
    emitted = sorted(set(result["events"]))
    assert len(emitted) == len(result["events"]) and emitted, described

    # Every event the client emitted is stored exactly once (the last batches are written as the
    # sockets close).
    def stored():
        (count,) = stack.query(
            "SELECT COUNT(*) FROM orchestration_event WHERE id = ANY(%s::uuid[])", [emitted]
        )[0]
        return count == len(emitted) or None

    wait_for(stored, timeout=30, what=f"the {len(emitted)} emitted events stored")
    runs = result["flow_runs"]
    rows = stack.query(
        "SELECT r.id::text, r.state_type, "
        "(SELECT COUNT(*) FROM orchestration_log l WHERE l.flow_run_id = r.id) "
        "FROM orchestration_flowrun r WHERE r.id = ANY(%s::uuid[])",
        [runs],
    )
    assert len(rows) == len(runs), described
    wrong = [row for row in rows if row[1] != "COMPLETED" or row[2] != LOGS_PER_RUN]
    assert not wrong, (wrong[:10], described[-2000:])


def test_backends_terminated_again_and_again(stack):
    mark = stack.log_mark()
    client = _contention(stack, 3)
    kills = 0
    while client.poll() is None:  # every backend of the stack's database, every second
        time.sleep(1.0)
        kills += stack.terminate_backends()
    result, described = client_result(client)
    statuses = _assert_only_retryable_failures(stack, mark)
    assert kills, "no backend was terminated"
    _assert_nothing_lost(stack, result, described)
    # The server serves as usual at once: no restart.
    assert stack.web_answers()
    print(f"terminated {kills} backends; statuses {statuses}")


@pytest.mark.skipif(
    os.environ.get("FAULTS_REDIS") != "1",
    reason="Not yet dependable, so opt-in (FAULTS_REDIS=1): on a loaded machine the web process once "
    "answered nothing for over a minute after its Redis was killed, though it passes on a quiet one",
)
def test_redis_killed_and_restarted_mid_run(stack):
    mark = stack.log_mark()
    client = _contention(stack, 4)
    try:
        wait_for(lambda: sum(stack.answers(mark)[0].values()) >= 30, timeout=60, what="the clients under way")
        stack.redis.kill()
        outage_mark = stack.log_mark()
        # Redis stays away while the clients keep going: the web tier serves on without it.
        try:
            wait_for(
                lambda: sum(stack.answers(outage_mark)[0].values()) >= 30,
                timeout=20,
                what="requests served without Redis",
            )
        finally:
            stack.redis.start()
        result, described = client_result(client)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
    statuses = _assert_only_retryable_failures(stack, mark)
    _assert_nothing_lost(stack, result, described)
    print(f"statuses {statuses}")


def test_web_killed_during_a_set_state_burst(stack):
    mark = stack.log_mark()
    client = stack.start_client(CLIENTS / "set_state_burst.py", {"RUNS": RUNS, "WORKERS": 6})

    def set_states() -> int:
        return stack.log_text(mark).count("/set_state")

    try:
        wait_for(lambda: set_states() >= 12, timeout=60, what="the burst under way")
        stack.processes["web"].kill()
        stack.start_role("web")
        result, described = client_result(client)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
    assert "error" not in result, described
    runs = sorted(result["runs"])
    assert len(runs) == RUNS and set(result["runs"].values()) == {"COMPLETED"}, described
    # No half-written state: each run's current state is its latest state row, and its history is
    # exactly Pending, Running, Completed (a transition whose answer was lost was written once).
    rows = stack.query(
        "SELECT r.id::text, r.state_type, r.state_id::text, "
        "ARRAY(SELECT s.type FROM orchestration_flowrunstate s WHERE s.flow_run_id = r.id ORDER BY s.timestamp), "
        "(SELECT s.id::text FROM orchestration_flowrunstate s WHERE s.flow_run_id = r.id "
        " ORDER BY s.timestamp DESC LIMIT 1) "
        "FROM orchestration_flowrun r WHERE r.id = ANY(%s::uuid[])",
        [runs],
    )
    assert len(rows) == RUNS
    broken = [
        row
        for row in rows
        if row[1] != "COMPLETED" or row[2] != row[4] or list(row[3]) != ["PENDING", "RUNNING", "COMPLETED"]
    ]
    assert not broken, broken[:5]
    _assert_only_retryable_failures(stack, mark)
    print(f"client retried {len(result['retried'])} calls itself")


VISIBILITY_TIMEOUT = 5  # seconds: how soon the broker delivers again what the killed worker held


@pytest.mark.skipif(
    os.environ.get("FAULTS_CELERY") != "1",
    reason="Not yet dependable, so opt-in (FAULTS_CELERY=1): it passed in about 40 s on a loaded machine, "
    "but in one full run the task was not delivered again within 45 s; the cause is not found yet",
)
def test_worker_killed_mid_task_the_task_is_delivered_again_and_runs_each_action_once(stack):
    """An automation fires with two actions: ``do-nothing`` commits, then ``pause-automation``
    waits for the automation's row, which the test holds locked, so the worker is inside the task
    when it is killed (every one of its processes, with SIGKILL). A second worker gets the
    unacknowledged task again after the visibility timeout; the first action is not run again
    and the second runs once."""
    headers = {"Authorization": f"Bearer {stack.info['api_key']}"}
    api = httpx.Client(base_url=stack.info["api_url"] + "/", headers=headers, timeout=30)
    name = f"faults.worker-killed.{uuid.uuid4().hex[:8]}"

    def automation(suffix: str, actions: list[dict]) -> str:
        created = api.post(
            "automations/",
            json={
                "name": f"{name}.{suffix}",
                "trigger": {
                    "type": "event",
                    "posture": "Reactive",
                    "expect": [f"{name}.{suffix}"],
                    "match": {"prefect.resource.id": "faults.*"},
                    "threshold": 1,
                    "within": 0,
                },
                "actions": actions,
            },
        )
        assert created.status_code == 201, created.text
        return created.json()["id"]

    # The firing's own automation row is locked while its trigger is evaluated: the action that
    # waits pauses another automation, whose row only the action touches.
    target_id = automation("target", [{"type": "do-nothing"}])
    automation_id = automation(
        "fires",
        [
            {"type": "do-nothing"},
            {"type": "pause-automation", "source": "selected", "automation_id": target_id},
        ],
    )
    worker_extra = {"CELERY_BROKER_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT}
    first = stack.start_role("worker", worker_extra)
    lock = psycopg.connect(dbname=stack.database, connect_timeout=10, **stack.server)
    try:
        lock.execute("SELECT id FROM orchestration_automation WHERE id = %s FOR UPDATE", [target_id])
        event = {
            "id": str(uuid.uuid4()),
            "occurred": dt.datetime.now(dt.UTC).isoformat(),
            "event": f"{name}.fires",
            "resource": {"prefect.resource.id": "faults.worker"},
        }
        sent = api.post("events", json=[event])
        assert sent.status_code == 204, sent.text

        def blocked_on_the_lock() -> bool:
            rows = stack.query(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                [stack.database],
            )
            return rows[0][0] >= 1

        wait_for(blocked_on_the_lock, timeout=60, what="the worker inside the task, waiting for the row")
        runs = stack.query(
            "SELECT action_index, state FROM orchestration_automationactionrun ORDER BY action_index"
        )
        assert runs == [(0, "executed")], runs
        worker_log = stack.log_text(role="worker")
        assert worker_log.count("orchestration.run_automation_actions") >= 1
        assert not re.search(r"run_automation_actions\[[^\]]+\] succeeded", worker_log), worker_log[-3000:]
        first.kill_all()
    finally:
        lock.rollback()
        lock.close()

    mark = stack.log_mark("worker")
    taken_again = time.monotonic()
    second = stack.start_role("worker", worker_extra)
    try:

        def both_ran():
            rows = stack.query(
                "SELECT action_index, state FROM orchestration_automationactionrun ORDER BY action_index"
            )
            return rows if len(rows) == 2 else None

        runs = wait_for(both_ran, timeout=45, what="the task delivered again and its actions run")
        assert runs == [(0, "executed"), (1, "executed")]
        log = stack.log_text(mark, role="worker")
        assert "orchestration.run_automation_actions" in log and "received" in log, log[-3000:]
        (enabled,) = stack.query("SELECT enabled FROM orchestration_automation WHERE id = %s", [target_id])[0]
        assert enabled is False

        # One executed event per action: the delivery that was killed left none for the second.
        def executed():
            rows = stack.query(
                "SELECT payload->>'action_index' FROM orchestration_event "
                "WHERE event = 'prefect.automation.action.executed' AND resource_id = %s "
                "ORDER BY 1",
                [f"prefect.automation.{automation_id}"],
            )
            return rows if len(rows) >= 2 else None

        events = wait_for(executed, timeout=30, what="the executed events stored")
        time.sleep(1.0)  # a second copy would be written with the first
        assert events == [("0",), ("1",)] and stack.query(
            "SELECT COUNT(*) FROM orchestration_event WHERE event = 'prefect.automation.action.executed' "
            "AND resource_id = %s",
            [f"prefect.automation.{automation_id}"],
        ) == [(2,)]
        print(f"delivered again after {time.monotonic() - taken_again:.1f} s")
    finally:
        second.stop()
        api.close()
