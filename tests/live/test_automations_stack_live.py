"""Automations that fire, proven with the unmodified ``prefect`` client and CLI against our server
as production runs it (``tests/live/stack.py``: two web processes, two Celery workers and beat, on
the test database and a Redis of its own):

* a deployment served with ``flow.serve(triggers=[DeploymentEventTrigger(…)])`` is run by the
  serving process, once, when the custom event is sent with ``emit_event``; after ``prefect
  automation pause`` the event starts nothing;
* a proactive trigger (beat's 5 s clock) fires for a flow run that does not complete within its
  window and not for one that does; the late completion resolves it;
* a compound trigger needs both of its events, and its notification (a Slack webhook block) reaches
  a local HTTP receiver standing in for Slack;
* an incoming webhook made with ``prefect cloud webhook create``, called with a JSON body, starts a
  deployment with parameters taken from that body;
* exactly once under concurrency: two senders, one per web process, send one burst of events at
  the same moment; each expected firing happens once and each action runs once, on either worker.

The tests share one stack; each has a workspace of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from orchestration.models import (
    Automation,
    AutomationChildFiring,
    Deployment,
    Event,
    Flow,
    FlowRun,
    Webhook,
)
from tests.live.conftest import FLOWS_DIR, LiveTenant, make_live_tenant, wait_for
from tests.live.stack import Stack, StackClient, database_url
from tests.live.test_deployments_live import Spawned

pytestmark = pytest.mark.live

STEPS = str(FLOWS_DIR / "automation_steps.py")
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    """One stack for the module. Its tests use the database in autocommit (what they write is seen
    by the stack at once); it is flushed once, after the stack has stopped."""
    if connection.vendor != "postgresql":
        pytest.skip("the stack's processes share the test database: PostgreSQL only")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with django_db_blocker.unblock():
        running = Stack(tmp_path_factory.mktemp("stack"), database_url(connection.settings_dict),
                        settings.SECRET_KEY)  # fmt: skip
        try:
            running.start()
            yield running
        finally:
            running.stop()
            call_command("flush", verbosity=0, interactive=False)


@pytest.fixture
def tenant(stack) -> LiveTenant:
    return make_live_tenant(stack.urls[0])


@pytest.fixture
def real_client(stack, tenant, tmp_path) -> Iterator[StackClient]:
    client = StackClient(stack, tenant, tmp_path)
    yield client
    client.close()


class Receiver:
    """A local HTTP receiver standing in for Slack: keeps each POST (path, JSON body), answers 200."""

    def __init__(self):
        self.posts: list[dict] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                posts.append({"path": self.path, "body": json.loads(body or b"null")})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def steps(real_client: StackClient, todo: list[dict], *, web: int = 0) -> dict:
    run = real_client.run([STEPS, json.dumps(todo)], web=web)
    assert run.returncode == 0 and run.result is not None and "error" not in run.result, run.describe()
    return run.result


def result_of(spawned: Spawned) -> dict | None:
    for line in reversed(spawned.output(tail=20000).splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    return None


def automation_events(workspace, name: str, automation_id) -> list[Event]:
    return list(
        Event.objects.for_workspace(workspace.id)
        .filter(event=name, resource_id=f"prefect.automation.{automation_id}")
        .order_by("occurred")
    )


def count(workspace, name: str, automation_id) -> int:
    return len(automation_events(workspace, name, automation_id))


def reactive(resource: str, event: str, threshold: int = 1) -> dict:
    return {"type": "event", "posture": "Reactive", "match": {"prefect.resource.id": resource},
            "expect": [event], "threshold": threshold, "within": 0}  # fmt: skip


def order(event: str, number: int, **payload) -> dict:
    return {"emit": {"event": event, "resource": {"prefect.resource.id": f"shop.order.{number}"},
                     "payload": payload}}  # fmt: skip


def make_deployment(workspace, name: str = "d") -> Deployment:
    flow = Flow.objects.for_workspace(workspace.id).create(workspace_id=workspace.id, name=f"{name}-flow")
    return Deployment.objects.for_workspace(workspace.id).create(
        workspace_id=workspace.id, flow=flow, name=name, enforce_parameter_schema=False
    )


# --------------------------------------------------------------------------------------------------
# the proof
# --------------------------------------------------------------------------------------------------


def test_a_served_deployments_trigger_runs_it_once_and_pausing_stops_it(real_client, tenant, stack, tmp_path):
    workspace = tenant.workspace
    marker = tmp_path / "executed.jsonl"
    served = real_client.spawn(
        "serve_on_order.py", {"PREFECT_RUNNER_POLL_FREQUENCY": "1", "MARKER": str(marker)}, name="serve"
    )
    automations = Automation.objects.for_workspace(workspace.id)
    owned = wait_for(
        lambda: automations.filter(name="served-on-order").first(),
        lambda found: found is not None or served.popen.poll() is not None,
        timeout=60,
    )
    assert owned is not None, f"{served.describe()}\n{stack.describe()}"
    deployment = Deployment.objects.for_workspace(workspace.id).get(name="served")
    assert owned.actions[0]["deployment_id"] == str(deployment.id)
    runs = FlowRun.objects.for_workspace(workspace.id).filter(deployment_id=deployment.id)

    steps(real_client, [order("shop.order.placed", 7, quantity=3)])
    run = wait_for(lambda: runs.first(), lambda r: r is not None and r.state_type in FINAL, timeout=60)
    trail = f"{served.describe()}\n{stack.describe()}"
    assert run is not None and run.state_type == "COMPLETED", trail
    assert run.parameters == {"x": 3}
    # Run by the serving process, once.
    executed = [json.loads(line) for line in marker.read_text().splitlines()]
    assert [(line["flow_run_id"], line["x"]) for line in executed] == [(str(run.id), 3)], trail
    assert count(workspace, "prefect.automation.triggered", owned.id) == 1
    assert count(workspace, "prefect.automation.action.executed", owned.id) == 1

    paused = real_client.run(["prefect", "automation", "pause", "served-on-order"])
    assert paused.returncode == 0, paused.describe()
    owned.refresh_from_db()
    assert owned.enabled is False
    # The same event again, with an automation that witnesses its evaluation: once the witness has
    # fired, the batch has been evaluated against every enabled automation of the workspace.
    witness = {"name": "witness", "trigger": reactive("shop.order.*", "shop.order.placed"),
               "actions": [{"type": "do-nothing"}]}  # fmt: skip
    made = steps(real_client, [{"create": witness}, order("shop.order.placed", 8, quantity=5)])
    witnessed = wait_for(
        lambda: count(workspace, "prefect.automation.triggered", made["automations"]["witness"]),
        lambda n: n >= 1,
        timeout=30,
    )
    assert witnessed == 1, stack.describe()
    assert count(workspace, "prefect.automation.triggered", owned.id) == 1
    assert runs.count() == 1 and len(marker.read_text().splitlines()) == 1


def test_a_proactive_trigger_fires_for_the_run_that_does_not_complete_in_its_window(
    real_client, tenant, stack, tmp_path
):
    workspace = tenant.workspace
    finish = tmp_path / "finish"
    jobs = real_client.spawn("proactive_runs.py", {"MARKER": str(finish)}, name="proactive")
    flow_runs = FlowRun.objects.for_workspace(workspace.id)
    slow = wait_for(
        lambda: flow_runs.filter(flow__name="slow-job", state_type="RUNNING").first(),
        lambda found: found is not None or jobs.popen.poll() is not None,
        timeout=60,
    )
    assert slow is not None, f"{jobs.describe()}\n{stack.describe()}"
    quick = flow_runs.get(flow__name="quick-job")
    assert quick.state_type == "COMPLETED"
    automation = Automation.objects.for_workspace(workspace.id).get(name="runs-finish-in-time")

    # The slow run's window ends 10 s after it started running; beat's clock judges it within 5 s.
    fired = wait_for(
        lambda: automation_events(workspace, "prefect.automation.triggered", automation.id),
        lambda found: bool(found),
        timeout=40,
    )
    assert len(fired) == 1, f"{jobs.describe()}\n{stack.describe()}"
    assert fired[0].payload["triggering_labels"] == {"prefect.resource.id": f"prefect.flow-run.{slow.id}"}
    assert fired[0].occurred >= slow.start_time + dt.timedelta(seconds=10)
    ticks = stack.proactive_ticks()

    # The slow run completes late: that resolves the trigger.
    finish.write_text("")
    jobs.popen.wait(60)
    result = result_of(jobs)
    assert result is not None and "error" not in result, jobs.describe()
    assert (result["quick"], result["slow"], result["slow_state"]) == (
        str(quick.id),
        str(slow.id),
        "COMPLETED",
    )
    resolved = wait_for(
        lambda: automation_events(workspace, "prefect.automation.resolved", automation.id),
        lambda found: bool(found),
        timeout=20,
    )
    assert len(resolved) == 1, stack.describe()
    # One more whole tick of the clock: the quick run's window, ended earlier, never fires.
    wait_for(stack.proactive_ticks, lambda n: n > ticks, timeout=20)
    assert count(workspace, "prefect.automation.triggered", automation.id) == 1
    assert count(workspace, "prefect.automation.action.executed", automation.id) == 1


def test_a_compound_trigger_needs_both_events_and_notifies_a_local_receiver(
    real_client, tenant, stack, receiver, tmp_path
):
    workspace = tenant.workspace
    compound = {
        "name": "paid-and-shipped",
        "trigger": {"type": "compound", "require": "all", "within": 60,
                    "triggers": [reactive("shop.order.*", "shop.order.paid"),
                                 reactive("shop.order.*", "shop.order.shipped")]},
        "actions": [{"type": "send-notification", "block_document_id": "block:team-alerts",
                     "subject": "Order ready",
                     "body": "{{ event.resource['prefect.resource.id'] }}: {{ event.event }}"}],
    }  # fmt: skip
    slack = {"name": "team-alerts", "url": f"{receiver.url}/services/T000/B000/XXXX"}
    paid_sent, ship = tmp_path / "paid-sent", tmp_path / "ship"
    orders = real_client.spawn(
        [STEPS, json.dumps([{"slack": slack}, {"create": compound}, order("shop.order.paid", 9),
                            {"start_line": {"ready": str(paid_sent), "go": str(ship)}},
                            order("shop.order.shipped", 9)])],
        name="orders",
    )  # fmt: skip
    wait_for(lambda: paid_sent.exists() or orders.popen.poll() is not None, bool, timeout=60)
    assert paid_sent.exists(), orders.describe()
    automation = Automation.objects.for_workspace(workspace.id).get(name="paid-and-shipped")

    # The first child fired (its firing waits for the parent's other child); the parent did not.
    children = AutomationChildFiring.objects.for_workspace(workspace.id).filter(automation=automation)
    assert wait_for(children.count, lambda n: n >= 1, timeout=30) == 1, stack.describe()
    assert count(workspace, "prefect.automation.triggered", automation.id) == 0
    assert receiver.posts == []

    ship.write_text("")
    orders.popen.wait(60)
    result = result_of(orders)
    assert result is not None and "error" not in result, orders.describe()
    executed = wait_for(
        lambda: automation_events(workspace, "prefect.automation.action.executed", automation.id),
        lambda found: bool(found),
        timeout=30,
    )
    assert len(executed) == 1, stack.describe()
    assert receiver.posts == [
        {
            "path": "/services/T000/B000/XXXX",
            "body": {"text": "*Order ready*\nshop.order.9: shop.order.shipped"},
        }
    ]
    assert executed[0].payload["status_code"] == 200
    assert count(workspace, "prefect.automation.triggered", automation.id) == 1


WEBHOOK_TEMPLATE = (
    '{"event": "shop.order.received", "resource": {"prefect.resource.id": "shop.order.{{ body.id }}"}, '
    '"payload": {"quantity": {{ body.quantity }}, "customer": "{{ body.customer }}"}}'
)


def test_an_incoming_webhook_starts_a_deployment_with_parameters_from_its_body(real_client, tenant, stack):
    workspace = tenant.workspace
    deployment = make_deployment(workspace)
    # Made with the request ``prefect cloud webhook create`` sends (the CLI itself:
    # tests/live/test_webhook_cli_live.py).
    made = httpx.post(f"{tenant.api_url}/webhooks/", json={"name": "orders", "template": WEBHOOK_TEMPLATE},
                      headers={"Authorization": f"Bearer {tenant.developer_key}"}, timeout=30)  # fmt: skip
    assert made.status_code == 201, made.text
    webhook = Webhook.objects.for_workspace(workspace.id).get(id=made.json()["id"])
    on_order = {
        "name": "run-on-order",
        "trigger": reactive("shop.order.*", "shop.order.received"),
        "actions": [{"type": "run-deployment", "source": "selected", "deployment_id": str(deployment.id),
                     "parameters": {"quantity": "{{ event.payload.quantity }}",
                                    "customer": "{{ event.payload.customer }}"}}],
    }  # fmt: skip
    created = real_client.run(["prefect", "automation", "create", "--from-json", json.dumps(on_order)])
    assert created.returncode == 0, created.describe()
    automation = Automation.objects.for_workspace(workspace.id).get(name="run-on-order")

    # The caller (a shop, say) posts to the other web process: any replica takes the call.
    answer = httpx.post(
        f"{stack.urls[1]}/hooks/{webhook.slug}", json={"id": 12, "quantity": 4, "customer": "Ada"}
    )
    assert answer.status_code == 204, answer.text
    runs = FlowRun.objects.for_workspace(workspace.id).filter(deployment_id=deployment.id)
    executed = wait_for(
        lambda: count(workspace, "prefect.automation.action.executed", automation.id),
        lambda n: n >= 1,
        timeout=30,
    )
    assert executed == 1, stack.describe()
    (run,) = runs
    assert run.parameters == {"quantity": 4, "customer": "Ada"}
    assert count(workspace, "prefect.automation.triggered", automation.id) == 1


TICKS_EACH = 8  # per sender, for the automation firing on every tick
TICKS_SHARED = 9  # per sender, for the automation firing on every third
PAIRS = 3


def test_one_burst_through_two_web_processes_fires_each_expected_firing_once(
    real_client, tenant, stack, tmp_path
):
    """Both senders' events reach the same automations at the same moment, each through its own web
    process: the buckets they share count each event once (``every-third`` fires 2 x 9 / 3 times),
    each pair's compound fires once although its two events are evaluated by two processes at
    once, and each firing's action (a run of the deployment) runs once, on either worker."""
    workspace = tenant.workspace
    deployment = make_deployment(workspace)
    run_it = [{"type": "run-deployment", "source": "selected", "deployment_id": str(deployment.id),
               "parameters": {"automation": "{{ automation.name }}"}}]  # fmt: skip
    bodies = [
        {"name": "each-tick", "trigger": reactive("burst.one", "burst.tick"), "actions": run_it},
        {"name": "every-third", "trigger": reactive("burst.shared", "burst.tick", 3), "actions": run_it},
        *[
            {"name": f"pair-{k}", "actions": run_it,
             "trigger": {"type": "compound", "require": "all", "within": 60,
                         "triggers": [reactive(f"burst.pair.{k}", "burst.a"),
                                      reactive(f"burst.pair.{k}", "burst.b")]}}
            for k in range(PAIRS)
        ],
    ]  # fmt: skip
    expected = {"each-tick": 2 * TICKS_EACH, "every-third": 2 * TICKS_SHARED // 3} | {
        f"pair-{k}": 1 for k in range(PAIRS)
    }
    created = real_client.run(["prefect", "automation", "create", "--from-json", json.dumps(bodies)])
    assert created.returncode == 0, created.describe()
    ids = {a.name: a.id for a in Automation.objects.for_workspace(workspace.id)}
    assert set(ids) == set(expected)

    go = tmp_path / "go"

    def burst(side: str, pair_event: str) -> list[dict]:
        out: list[dict] = [{"start_line": {"ready": str(tmp_path / f"{side}.ready"), "go": str(go)}}]
        for i in range(max(TICKS_EACH, TICKS_SHARED)):
            if i < TICKS_EACH:
                out.append(
                    {"emit": {"event": "burst.tick", "resource": {"prefect.resource.id": "burst.one"}}}
                )
            out.append({"emit": {"event": "burst.tick", "resource": {"prefect.resource.id": "burst.shared"}}})
            if i < PAIRS:
                out.append(
                    {"emit": {"event": pair_event, "resource": {"prefect.resource.id": f"burst.pair.{i}"}}}
                )
        return out

    task, workers = "orchestration.run_automation_actions", ("worker-1", "worker-2")
    ran_before = [stack.tasks_run(worker, task) for worker in workers]
    senders = [
        real_client.spawn([STEPS, json.dumps(burst("a", "burst.a"))], web=0, name="sender-a"),
        real_client.spawn([STEPS, json.dumps(burst("b", "burst.b"))], web=1, name="sender-b"),
    ]
    # Both connected and waiting (or one failed): then both send at once.
    wait_for(
        lambda: [(tmp_path / f"{side}.ready").exists() or s.popen.poll() is not None
                 for side, s in zip("ab", senders, strict=True)],
        all,
        timeout=60,
    )  # fmt: skip
    go.write_text("")
    for sender in senders:
        sender.popen.wait(60)
        result = result_of(sender)
        assert result is not None and "error" not in result, sender.describe()
        assert result["emitted"] == TICKS_EACH + TICKS_SHARED + PAIRS

    def counts(name: str) -> dict[str, int]:
        return {automation: count(workspace, name, ids[automation]) for automation in expected}

    triggered = wait_for(
        lambda: counts("prefect.automation.triggered"),
        lambda found: all(found[a] >= n for a, n in expected.items()),
        timeout=30,
    )
    executed = wait_for(
        lambda: counts("prefect.automation.action.executed"),
        lambda found: all(found[a] >= n for a, n in expected.items()),
        timeout=30,
    )
    trail = stack.describe()
    assert triggered == expected, trail
    assert executed == expected, trail
    runs = FlowRun.objects.for_workspace(workspace.id).filter(deployment_id=deployment.id)
    assert {a: runs.filter(parameters__automation=a).count() for a in expected} == expected
    assert runs.count() == sum(expected.values())
    # Both workers ran this burst's actions.
    ran = [stack.tasks_run(worker, task) - before for worker, before in zip(workers, ran_before, strict=True)]
    assert all(ran), (ran, trail)
