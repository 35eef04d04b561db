"""Faults a deployment meets, each asserting what survived.

A deployment of its own (``harness.Stack``: web and worker processes as production starts them,
its own PostgreSQL database and a private Redis) is driven by the unmodified ``prefect`` client
while one of its parts fails:

* every backend of its database terminated again and again;
* PostgreSQL gone for a few seconds, as in a restart (every connection of the web process cut, new
  ones refused), then back: the web process serves again without a restart;
* its Redis frozen (answering nothing), then killed and restarted mid-run: every request is
  answered within a few seconds;
* its web process killed with SIGKILL in the middle of a burst of ``set_state`` calls, then started
  again;
* a Celery worker's pool process killed with SIGKILL in the middle of an automation's actions (the
  worker lives): the task is retried and each action has run once;
* a Celery worker killed whole in the middle of an automation's actions, then another started: the
  task is delivered again after the visibility timeout and each action has run once.

Each asserts: the server answered only 2xx/4xx and 503 (never a 500, no exception escaped the ASGI
application), the client finished its flow runs, every event it emitted is stored exactly once and
every log it shipped exactly once, and no run's state history is half-written. Nothing here touches
the suite's own database, Redis or live server.
"""

from __future__ import annotations

import datetime as dt
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


DATABASE_DOWN_SECONDS = 3.0


def test_postgresql_restarted_mid_run(stack):
    mark = stack.log_mark()
    client = _contention(stack, 6)
    # Once the clients are busy: every connection cut, new ones refused for a while.
    wait_for(lambda: sum(stack.answers(mark)[0].values()) >= 10, timeout=60, what="the clients at work")
    cut = stack.relay.outage()
    time.sleep(DATABASE_DOWN_SECONDS)
    stack.relay.resume()
    result, described = client_result(client)
    statuses = _assert_only_retryable_failures(stack, mark)
    assert statuses.get(503), f"no request met the outage: {statuses}"
    _assert_nothing_lost(stack, result, described)
    # Back without a restart of the product: the process that saw the outage answers.
    assert stack.web_answers()
    response = httpx.get(f"{stack.url}/readyz", timeout=10)
    assert response.status_code == 200, response.text
    print(f"cut {cut} connections for {DATABASE_DOWN_SECONDS} s; statuses {statuses}")


REDIS_FROZEN_SECONDS = 6.0
REDIS_DOWN_SECONDS = 4.0
#: The longest a request may take while Redis does not answer: each Redis command a request waits
#: on gives up after ``REDIS_TIMEOUT_SECONDS`` (1 s); before that bound a request that read the
#: cache waited for redis-py's 5 s read timeout per command, and one publishing a Celery task for
#: ever.
SLOWEST_WITHOUT_REDIS_SECONDS = 5.0


def _durations(stack: Stack, since: int) -> list[float]:
    """How long each request the web process answered since ``since`` took, in seconds."""
    found = []
    for line in stack.log_text(since).splitlines():
        match = re.search(r'"duration_ms": ([0-9.]+)', line)
        if match and '"status"' in line:
            found.append(float(match.group(1)) / 1000)
    return found


def _probe(api: httpx.Client, seconds: float) -> list[tuple[int, float]]:
    """Ask the API again and again for ``seconds``: each answer's status and how long it took."""
    answers = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.monotonic()
        response = api.post("flows/filter", json={"limit": 1})
        answers.append((response.status_code, time.monotonic() - started))
        time.sleep(0.1)
    return answers


def test_redis_frozen_then_killed_and_restarted_mid_run(stack):
    """Redis stops answering (SIGSTOP: its connections stay open, new ones are accepted by the
    kernel, nothing is answered), then is killed and started again, while the clients work: the
    web tier answers on, each request at once (never waiting long on Redis), and nothing
    acknowledged is lost."""
    headers = {"Authorization": f"Bearer {stack.info['api_key']}"}
    api = httpx.Client(base_url=stack.info["api_url"] + "/", headers=headers, timeout=60)
    mark = stack.log_mark()
    client = _contention(stack, 12)
    try:
        wait_for(lambda: sum(stack.answers(mark)[0].values()) >= 30, timeout=60, what="the clients under way")
        stack.redis.freeze()
        try:
            frozen = _probe(api, REDIS_FROZEN_SECONDS)
        finally:
            stack.redis.thaw()
        stack.redis.kill()
        try:
            down = _probe(api, REDIS_DOWN_SECONDS)
        finally:
            stack.redis.start()
        result, described = client_result(client)
    finally:
        api.close()
        if client.poll() is None:
            client.kill()
            client.wait(10)
    for phase, answers in (("frozen", frozen), ("down", down)):
        assert len(answers) >= 3, (phase, answers)
        assert {status for status, _ in answers} <= {200, 503}, (phase, answers)
        assert max(took for _, took in answers) < SLOWEST_WITHOUT_REDIS_SECONDS, (phase, answers)
    statuses = _assert_only_retryable_failures(stack, mark)
    _assert_nothing_lost(stack, result, described)
    # Every request of the run, the clients' too, was answered within the bound.
    everything = _durations(stack, mark)
    assert max(everything) < SLOWEST_WITHOUT_REDIS_SECONDS, sorted(everything)[-5:]
    print(
        f"statuses {statuses}; frozen: {len(frozen)} probes, slowest {max(t for _, t in frozen):.2f} s; "
        f"down: {len(down)} probes, slowest {max(t for _, t in down):.2f} s; "
        f"slowest request of the run {max(everything):.2f} s"
    )


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
WORKER = {"CELERY_BROKER_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT}


def _action_runs(stack: Stack, automation_id: str) -> list[tuple]:
    return stack.query(
        "SELECT r.action_index, r.state FROM orchestration_automationactionrun r "
        "JOIN orchestration_automationfiring f ON f.id = r.firing_id "
        "WHERE f.automation_id = %s ORDER BY r.action_index",
        [automation_id],
    )


class _HeldFiring:
    """An automation fires with two actions: ``do-nothing`` commits, then ``pause-automation``
    waits for another automation's row, which the test holds locked, so a worker is inside the task
    (its first action done, its second under way) until ``release``. The firing's own automation
    row is locked while its trigger is evaluated, hence a second automation for the action."""

    def __init__(self, stack: Stack):
        self.stack = stack
        headers = {"Authorization": f"Bearer {stack.info['api_key']}"}
        self.api = httpx.Client(base_url=stack.info["api_url"] + "/", headers=headers, timeout=30)
        self.name = f"faults.worker.{uuid.uuid4().hex[:8]}"
        self.target_id = self._automation("target", [{"type": "do-nothing"}])
        self.automation_id = self._automation(
            "fires",
            [
                {"type": "do-nothing"},
                {"type": "pause-automation", "source": "selected", "automation_id": self.target_id},
            ],
        )
        self.lock: psycopg.Connection | None = None

    def _automation(self, suffix: str, actions: list[dict]) -> str:
        created = self.api.post(
            "automations/",
            json={
                "name": f"{self.name}.{suffix}",
                "trigger": {
                    "type": "event",
                    "posture": "Reactive",
                    "expect": [f"{self.name}.{suffix}"],
                    "match": {"prefect.resource.id": "faults.*"},
                    "threshold": 1,
                    "within": 0,
                },
                "actions": actions,
            },
        )
        assert created.status_code == 201, created.text
        return created.json()["id"]

    def fire_and_hold(self) -> None:
        """Lock the target's row, send the event, and return once a worker waits for the row."""
        stack = self.stack
        self.worker_mark = stack.log_mark("worker")
        self.lock = psycopg.connect(dbname=stack.database, connect_timeout=10, **stack.server)
        self.lock.execute(
            "SELECT id FROM orchestration_automation WHERE id = %s FOR UPDATE", [self.target_id]
        )
        event = {
            "id": str(uuid.uuid4()),
            "occurred": dt.datetime.now(dt.UTC).isoformat(),
            "event": f"{self.name}.fires",
            "resource": {"prefect.resource.id": "faults.worker"},
        }
        sent = self.api.post("events", json=[event])
        assert sent.status_code == 204, sent.text

        def blocked_on_the_lock() -> bool:
            rows = stack.query(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                [stack.database],
            )
            return rows[0][0] >= 1

        wait_for(blocked_on_the_lock, timeout=60, what="the worker inside the task, waiting for the row")
        assert _action_runs(stack, self.automation_id) == [(0, "executed")]
        # No task handed this firing has finished (a task received before the mark, such as an
        # earlier test's firing handed off again, may finish meanwhile).
        worker_log = stack.log_text(self.worker_mark, role="worker")
        received = re.findall(r"run_automation_actions\[([^\]]+)\] received", worker_log)
        assert received, worker_log[-3000:]
        finished = re.findall(r"run_automation_actions\[([^\]]+)\] (?:succeeded|raised)", worker_log)
        assert not set(received) & set(finished), worker_log[-3000:]

    def release(self) -> None:
        if self.lock is not None:
            self.lock.rollback()
            self.lock.close()
            self.lock = None

    def assert_each_action_ran_once(self, *, timeout: float) -> None:
        stack = self.stack

        def both_ran():
            rows = _action_runs(stack, self.automation_id)
            return rows if len(rows) == 2 else None

        runs = wait_for(both_ran, timeout=timeout, what="the task delivered again and its actions run")
        assert runs == [(0, "executed"), (1, "executed")]
        (enabled,) = stack.query(
            "SELECT enabled FROM orchestration_automation WHERE id = %s", [self.target_id]
        )[0]
        assert enabled is False

        # One executed event per action: the delivery that was cut off left none for the next one.
        resource = f"prefect.automation.{self.automation_id}"

        def executed():
            rows = stack.query(
                "SELECT payload->>'action_index' FROM orchestration_event "
                "WHERE event = 'prefect.automation.action.executed' AND resource_id = %s ORDER BY 1",
                [resource],
            )
            return rows if len(rows) >= 2 else None

        assert wait_for(executed, timeout=30, what="the executed events stored") == [("0",), ("1",)]
        time.sleep(0.5)  # a second copy would be written with the first
        assert stack.query(
            "SELECT COUNT(*) FROM orchestration_event WHERE event = 'prefect.automation.action.executed' "
            "AND resource_id = %s",
            [resource],
        ) == [(2,)]

    def close(self) -> None:
        self.release()
        self.api.close()


def _worker(stack: Stack):
    running = stack.processes.get("worker")
    if running is not None and running.popen.poll() is None:
        return running
    return stack.start_role("worker", WORKER)


def test_worker_pool_process_killed_mid_task_the_task_is_retried_and_runs_each_action_once(stack):
    """The out-of-memory killer's way: the pool process running the task is SIGKILLed, the worker
    itself lives. The task is sent again as a retry (``retry_on_worker_lost``) instead of being
    acknowledged as failed, and the same worker runs it: the first action is not run again."""
    worker = _worker(stack)
    firing = _HeldFiring(stack)
    try:
        firing.fire_and_hold()
        mark = stack.log_mark("worker")
        killed = worker.kill_children()
        assert killed, "the worker has no pool process"
        firing.release()
        firing.assert_each_action_ran_once(timeout=30)
        assert worker.popen.poll() is None, "the worker itself died"
        log = stack.log_text(mark, role="worker")
        assert "WorkerLostError" in log and "retry" in log.lower(), log[-3000:]
    finally:
        firing.close()


def test_worker_killed_mid_task_the_task_is_delivered_again_and_runs_each_action_once(stack):
    """The worker and its pool processes SIGKILLed at once, as a lost machine ends them: a second
    worker gets the unacknowledged task again once the visibility timeout has passed (kombu looks
    for such tasks at a worker's start and then every second here); the first action is not run
    again and the second runs once."""
    first = _worker(stack)
    firing = _HeldFiring(stack)
    try:
        firing.fire_and_hold()
        first.kill_all()
        firing.release()
        mark = stack.log_mark("worker")
        taken_again = time.monotonic()
        second = stack.start_role("worker", WORKER)
        firing.assert_each_action_ran_once(timeout=45)
        log = stack.log_text(mark, role="worker")
        assert "orchestration.run_automation_actions" in log and "received" in log, log[-3000:]
        print(f"delivered again after {time.monotonic() - taken_again:.1f} s")
        second.kill_all()
    finally:
        firing.close()
