"""Two processes evaluating one event stream never fire a bucket twice: buckets are rows locked
while an event is counted, firings are unique per trigger, key and event, and an action runs once
per firing. Proven with real connections from two threads (PostgreSQL; on SQLite writers take the
database lock in turn)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.utils import timezone

from orchestration.events.services import event_parse
from orchestration.models import AutomationActionRun, AutomationFiring, Event
from orchestration.services import triggers
from orchestration.services.automation_actions import automation_firing_act
from tests.conftest import bearer, make_tenant
from tests.orchestration.automations.engine import automation, event

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = 4
PER_KEY = 40


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("row locks between connections: PostgreSQL")
    yield


def _in_threads(*work):
    barrier = threading.Barrier(len(work))
    errors = []

    def run(job):
        try:
            barrier.wait()
            job()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def _stored(tenant, *raw):
    """Rows written straight to the table, so that only the evaluators below see them (the store
    would hand them to the engine on commit)."""
    rows = []
    for data in raw:
        parsed = event_parse(data)
        rows.append(
            Event(id=parsed.id, workspace_id=tenant.workspace.id, occurred=parsed.occurred, event=parsed.event,
                  resource_id=parsed.resource_id, resource=parsed.resource, related=parsed.related,
                  payload=parsed.payload, received=timezone.now())
        )  # fmt: skip
    return Event.objects.unscoped().bulk_create(rows)


def _stored_burst(tenant):
    return _stored(
        tenant,
        *(
            event("prefect.flow-run.Failed", seconds=1 + i * 0.01, resource=f"prefect.flow-run.{key}")
            for i in range(PER_KEY)
            for key in range(KEYS)
        ),
    )


@pytest.mark.parametrize("split", ["interleaved halves", "the same stream twice"])
def test_two_evaluators_fire_each_bucket_once(api_client, split):
    tenant = make_tenant()
    auto = automation(
        bearer(api_client, tenant.service_key),
        tenant,
        after=["prefect.flow-run.Running"],
        expect=["prefect.flow-run.Failed"],
        threshold=PER_KEY,
        within=3600,
        for_each=["prefect.resource.id"],
    )
    ws = tenant.workspace.id
    # Each flow run's window opens with its Running event; then the burst, counted from two threads.
    starts = [event("prefect.flow-run.Running", resource=f"prefect.flow-run.{key}") for key in range(KEYS)]
    triggers.events_stored(ws, _stored(tenant, *starts))
    stored = _stored_burst(tenant)
    if split == "interleaved halves":
        parts = [stored[0::2], stored[1::2]]
    else:
        parts = [stored, list(reversed(stored))]
    _in_threads(*(lambda part=part: triggers.events_stored(ws, part) for part in parts))

    fired = list(AutomationFiring.objects.unscoped().filter(automation_id=auto))
    # One window of an hour per flow run, which fires only when every one of its events is counted
    # (a lost update leaves it short), and then once.
    assert sorted(f.triggering_labels["prefect.resource.id"] for f in fired) == sorted(
        f"prefect.flow-run.{key}" for key in range(KEYS)
    )
    runs = AutomationActionRun.objects.unscoped().filter(firing__automation_id=auto)
    assert runs.count() == KEYS and set(runs.values_list("state", flat=True)) == {"executed"}


def test_two_runners_of_one_firing_run_its_actions_once(api_client):
    tenant = make_tenant()
    auto = automation(bearer(api_client, tenant.service_key), tenant, expect=["x"], threshold=2,
                      actions=[{"type": "do-nothing"}, {"type": "do-nothing"}])  # fmt: skip
    triggers.firing_dispatch_set(lambda workspace_id, firing_ids: None)  # the runners below run it
    try:
        triggers.events_stored(tenant.workspace.id, _stored(tenant, event("x")))
        triggers.events_stored(tenant.workspace.id, _stored(tenant, event("x", seconds=1)))
    finally:
        from orchestration import tasks

        triggers.firing_dispatch_set(tasks.automation_firings_dispatch)
    (firing,) = AutomationFiring.objects.unscoped().filter(automation_id=auto)
    counts = []
    _in_threads(
        *(
            lambda: counts.append(
                automation_firing_act(workspace_id=firing.workspace_id, firing_id=firing.id)
            )
            for _ in range(3)
        )
    )
    assert sum(counts) == 2
    assert AutomationActionRun.objects.unscoped().filter(firing=firing).count() == 2
    assert automation_firing_act(workspace_id=firing.workspace_id, firing_id=firing.id) == 0


def test_two_clocks_fire_each_proactive_window_once(api_client):
    tenant = make_tenant()
    auto = automation(
        bearer(api_client, tenant.service_key), tenant, posture="Proactive", after=["prefect.flow-run.Running"],
        expect=["prefect.flow-run.Completed"], within=60, for_each=["prefect.resource.id"],
    )  # fmt: skip
    starts = [
        event("prefect.flow-run.Running", resource=f"prefect.flow-run.{key}") for key in range(KEYS * 5)
    ]
    triggers.events_stored(tenant.workspace.id, _stored(tenant, *starts))
    later = timezone.now()  # every window (opened an hour ago) has ended
    counts = []
    _in_threads(*(lambda: counts.append(triggers.proactive_triggers_evaluate(now=later)) for _ in range(2)))
    assert sum(counts) == KEYS * 5
    fired = AutomationFiring.objects.unscoped().filter(automation_id=auto)
    assert fired.count() == KEYS * 5
    assert len(set(fired.values_list("bucketing_key", flat=True))) == KEYS * 5


def test_two_evaluators_of_a_compound_trigger_fire_it_once(api_client):
    tenant = make_tenant()
    body = {
        "name": "both",
        "trigger": {"type": "compound", "require": "all", "within": 600, "triggers": [
            {"type": "event", "posture": "Reactive", "expect": [name], "threshold": 1} for name in ("a", "b")
        ]},
        "actions": [{"type": "do-nothing"}],
    }  # fmt: skip
    response = bearer(api_client, tenant.service_key).post(
        f"{tenant.prefix}/automations/", body, format="json"
    )
    auto = response.json()["id"]
    ws = tenant.workspace.id
    for round_ in range(5):
        a, b = _stored(tenant, event("a", seconds=round_), event("b", seconds=round_))
        _in_threads(lambda a=a: triggers.events_stored(ws, [a]), lambda b=b: triggers.events_stored(ws, [b]))
    # Each round's pair fires the parent once: neither evaluator missed the other's child (a lost
    # parent firing) nor did both claim them (a double one).
    top = [f for f in AutomationFiring.objects.unscoped().filter(automation_id=auto) if f.actions]
    assert len(top) == 5


def test_two_runners_of_a_webhook_call_make_it_once(api_client, settings):
    from orchestration.models import BlockSchema
    from tests.peers.http_receiver import Receiver

    settings.OUTBOUND_WEBHOOK_ALLOWED_CIDRS = ["127.0.0.1/32"]
    receiver = Receiver()
    receiver.route("/hook", delay=1.0)  # the call is in flight while the second runner arrives
    try:
        tenant = make_tenant()
        client = bearer(api_client, tenant.service_key)
        assert client.get(f"{tenant.prefix}/block_types/slug/webhook").status_code == 200
        schema = BlockSchema.objects.for_workspace(tenant.workspace.id).get(block_type__slug="webhook")
        body = {"name": "hook", "block_type_id": str(schema.block_type_id), "block_schema_id": str(schema.id),
                "data": {"url": f"{receiver.url}/hook", "method": "POST", "headers": {}}}  # fmt: skip
        block = client.post(f"{tenant.prefix}/block_documents/", body, format="json").json()["id"]
        auto = automation(client, tenant, expect=["x"],
                          actions=[{"type": "call-webhook", "block_document_id": block, "payload": "hi"}])  # fmt: skip
        triggers.firing_dispatch_set(lambda workspace_id, firing_ids: None)  # the runners below run it
        try:
            triggers.events_stored(tenant.workspace.id, _stored(tenant, event("x")))
        finally:
            from orchestration import tasks

            triggers.firing_dispatch_set(tasks.automation_firings_dispatch)
        (firing,) = AutomationFiring.objects.unscoped().filter(automation_id=auto)
        counts = []
        _in_threads(
            *(
                lambda: counts.append(
                    automation_firing_act(workspace_id=firing.workspace_id, firing_id=firing.id)
                )
                for _ in range(2)
            )
        )
        assert sorted(counts) == [0, 1]
        assert len(receiver.requests) == 1
        (run,) = AutomationActionRun.objects.unscoped().filter(firing=firing)
        assert run.state == "executed"
    finally:
        receiver.close()


def test_two_batches_firing_compound_children_in_opposite_orders_finish(api_client):
    """A batch is one transaction: a child firing locks its automation's row, and two batches that
    reach two compound automations' children in opposite orders would wait on each other; the rows
    are locked up front in one order, so both finish and each parent fires once per batch."""
    tenant = make_tenant()
    client = bearer(api_client, tenant.service_key)
    autos = []
    for name, (first, second) in {"x": ("a", "b"), "y": ("c", "d")}.items():
        body = {
            "name": name,
            "trigger": {"type": "compound", "require": "all", "within": 600, "triggers": [
                {"type": "event", "posture": "Reactive", "expect": [child], "threshold": 1}
                for child in (first, second)
            ]},
            "actions": [{"type": "do-nothing"}],
        }  # fmt: skip
        autos.append(client.post(f"{tenant.prefix}/automations/", body, format="json").json()["id"])
    ws = tenant.workspace.id
    one = _stored(tenant, *(event(name, seconds=i) for i, name in enumerate("cdab")))
    two = _stored(tenant, *(event(name, seconds=i) for i, name in enumerate("abcd")))
    _in_threads(lambda: triggers.events_stored(ws, one), lambda: triggers.events_stored(ws, two))
    for auto in autos:
        top = [f for f in AutomationFiring.objects.unscoped().filter(automation_id=auto) if f.actions]
        assert len(top) == 2
