"""What automation actions' templates may use, as in Prefect's server: the default notification
bodies and webhook payloads Prefect's UI fills in (read from the UI bundle the installed `prefect`
ships) render for a real flow run's state event, with Prefect's ``ui_url`` and
``ui_resource_events_url`` filters linking into the workspace's UI, the humanize filters, and the
objects' fields (``flow_run.state.timestamp``, ``deployment.status``, ``work_pool.status``,
``work_queue.status``); a filter the sandbox lacks is refused when the template is saved."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from orchestration.models import BlockSchema
from orchestration.schemas.templates import TemplateObject, template_render, template_ui_base
from tests.orchestration.automations.engine import action_runs, automation, emitted
from tests.peers.http_receiver import Receiver

pytestmark = pytest.mark.django_db

# Where each of Prefect UI's defaults starts: the bodies and subjects of `send-notification` and
# the payloads of `call-webhook`, for each of the UI's automation templates.
BODIES = {
    "flow-run-state": "Flow run {{ flow.name }}/{{ flow_run.name }}",
    "deployment-status": "Name: {{ flow.name }}/{{ deployment.name }}",
    "work-pool-status": "Name: {{ work_pool.name }}",
    "work-queue-status": "Name: {{ work_queue.name }}",
    "custom": "Automation: {{ automation.name }}",
}
SUBJECTS = {
    "deployment-status": "Prefect deployment '{{ flow.name }}/{{ deployment.name }}'",
    "work-pool-status": "Prefect work pool '{{ work_pool.name }}'",
    "work-queue-status": "Prefect work queue '{{ work_queue.name }}'",
    "custom": "A Prefect automation '{{ automation.name }}'",
}
PAYLOADS = {
    "flow-run-state": '"flow_run_state_type"',
    "deployment-status": '"deployment_status"',
    "work-pool-status": '"work_pool_status"',
    "work-queue-status": '"work_queue_status"',
    "custom": '"automation_description"',
}


def _literal_around(source: str, anchor: str) -> str:
    """The JavaScript template literal (backquoted, no interpolation) holding ``anchor``."""
    at = source.index(anchor)
    start = at
    while not (source[start] == "`" and source[start - 1] != "\\"):
        start -= 1
    end = at
    while not (source[end] == "`" and source[end - 1] != "\\"):
        end += 1
    return source[start + 1 : end].replace("\\`", "`").replace("\\\\", "\\")


@pytest.fixture(scope="module")
def ui_defaults() -> dict[str, dict[str, str]]:
    import prefect

    for bundle in sorted((Path(prefect.__ui_static_path__) / "assets").glob("index-*.js")):
        source = bundle.read_text(encoding="utf-8")
        if BODIES["flow-run-state"] in source:
            break
    else:
        pytest.fail("Prefect's UI bundle holds no default notification body")
    return {
        "body": {kind: _literal_around(source, anchor) for kind, anchor in BODIES.items()},
        "subject": {kind: _literal_around(source, anchor) for kind, anchor in SUBJECTS.items()},
        "payload": {kind: _literal_around(source, anchor) for kind, anchor in PAYLOADS.items()},
    }


@pytest.fixture
def receiver(settings):
    settings.OUTBOUND_WEBHOOK_ALLOWED_CIDRS = ["127.0.0.1/32"]
    peer = Receiver()
    yield peer
    peer.close()


def _block(dev, tenant, slug: str, data: dict) -> str:
    assert dev.get(f"{tenant.prefix}/block_types/slug/{slug}").status_code == 200
    schema = BlockSchema.objects.for_workspace(tenant.workspace.id).get(block_type__slug=slug)
    body = {"name": slug, "block_type_id": str(schema.block_type_id), "block_schema_id": str(schema.id),
            "data": data}  # fmt: skip
    response = dev.post(f"{tenant.prefix}/block_documents/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_prefect_uis_default_bodies_and_payloads_render(
    tenant, dev, receiver, settings, ui_defaults, django_capture_on_commit_callbacks
):
    """A flow run of a deployment in a work pool fails (through the API, which emits Prefect's
    `prefect.flow-run.Failed` with its flow, deployment, queue and pool): an automation with every
    default of Prefect's UI notifies and calls webhooks, and each renders."""
    settings.PUBLIC_URL = "https://prefect.example.test"
    pool = dev.post(f"{tenant.prefix}/work_pools/", {"name": "pool", "type": "process"}, format="json").json()
    flow_id = dev.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()["id"]
    body = {"name": "nightly", "flow_id": flow_id, "work_pool_name": "pool"}
    deployment = dev.post(f"{tenant.prefix}/deployments/", body, format="json").json()
    body = {"state": {"type": "RUNNING", "name": "Running"}}
    response = dev.post(
        f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", body, format="json"
    )
    assert response.status_code == 201, response.json()
    run = response.json()

    slack = _block(dev, tenant, "slack-webhook", {"url": f"{receiver.url}/slack"})
    hook = _block(dev, tenant, "webhook", {"url": f"{receiver.url}/hook", "method": "POST", "headers": {}})
    notifications = [
        {"type": "send-notification", "block_document_id": slack, "body": ui_defaults["body"][kind],
         "subject": ui_defaults["subject"].get(kind, "Prefect flow run notification")}
        for kind in BODIES
    ]  # fmt: skip
    webhooks = [
        {"type": "call-webhook", "block_document_id": hook, "payload": ui_defaults["payload"][kind]}
        for kind in PAYLOADS
    ]
    automation(dev, tenant, name="watch", expect=["prefect.flow-run.Failed"],
               actions=[*notifications, *webhooks])  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = dev.post(f"{tenant.prefix}/flow_runs/{run['id']}/set_state",
                            {"state": {"type": "FAILED", "name": "Failed", "message": "boom"}}, format="json")  # fmt: skip
        assert response.status_code == 201, response.json()

    assert emitted(tenant, "prefect.automation.action.failed") == []
    assert [r.state for r in action_runs(tenant)] == ["executed"] * (len(BODIES) + len(PAYLOADS))
    ui = f"https://prefect.example.test/account/{tenant.account.id}/workspace/{tenant.workspace.id}/"
    sent = [json.loads(r["body"]) for r in receiver.requests]
    texts = {kind: message["text"] for kind, message in zip(BODIES, sent[: len(BODIES)], strict=True)}
    state_at = re.search(r"at (\S+ \S+)\.\n", texts["flow-run-state"]).group(1)
    assert dt.datetime.fromisoformat(state_at) > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    assert texts["flow-run-state"] == (
        "*Prefect flow run notification*\n"
        f"Flow run etl/{run['name']} observed in state `Failed` at {state_at}.\n"
        f"Flow ID: {flow_id}\nFlow run ID: {run['id']}\n"
        f"Flow run URL: {ui}runs/flow-run/{run['id']}\nState message: boom"
    )
    assert texts["deployment-status"] == (
        "*Prefect deployment 'etl/nightly' has entered status 'NOT_READY'*\n\n"
        f"Name: etl/nightly\nStatus: NOT_READY\nURL: {ui}deployments/deployment/{deployment['id']}"
    )
    assert texts["work-pool-status"] == (
        "*Prefect work pool 'pool' has entered status 'NOT_READY'*\n"
        f"Name: pool\nStatus: NOT_READY\nURL: {ui}work-pools/work-pool/pool"
    )
    assert texts["work-queue-status"] == (
        "*Prefect work queue 'default' has entered status 'NOT_READY'*\n"
        f"Name: default\nStatus: NOT_READY\nURL: {ui}work-queues/work-queue/{pool['default_queue_id']}"
    )
    custom = texts["custom"]
    assert custom.startswith("*A Prefect automation 'watch' was triggered*\nAutomation: watch\n")
    assert f"prefect.resource.id: prefect.flow-run.{run['id']}" in custom
    assert (
        "Role: deployment" in custom
        and f"prefect.resource.id: prefect.deployment.{deployment['id']}" in custom
    )

    payloads = dict(zip(PAYLOADS, sent[len(BODIES) :], strict=True))  # each one valid JSON
    assert payloads["flow-run-state"]["flow_run_url"] == f"{ui}runs/flow-run/{run['id']}"
    assert payloads["flow-run-state"]["flow_run_state_timestamp"] == state_at
    assert payloads["deployment-status"]["deployment_status"] == "NOT_READY"
    assert payloads["work-pool-status"]["work_pool_url"] == f"{ui}work-pools/work-pool/pool"
    assert payloads["work-queue-status"]["work_queue_status"] == "NOT_READY"
    assert payloads["custom"]["event_resource"]["prefect.resource.id"] == f"prefect.flow-run.{run['id']}"


def test_the_url_and_humanize_filters():
    now = dt.datetime.now(dt.UTC)
    context = {
        "flow_run": TemplateObject("flow-run", {"id": "r-1", "name": "x", "start_time": now - dt.timedelta(hours=3)}),
        "automation": TemplateObject("automation", {"id": "a-1"}),
        "event": TemplateObject("received-event", {"id": "e-1", "occurred": now}),
        "text": "see https://prefect.example.test/runs/flow-run/0f0e8c9a-1b2c-4d5e-8f90-a1b2c3d4e5f6 please",
    }  # fmt: skip
    template = (
        "{{ flow_run|ui_url }} {{ automation|ui_url }} {{ automation|ui_resource_events_url }} "
        "{{ flow_run|ui_resource_events_url }} {{ event|ui_url }} {{ text|flow_run_id }} "
        "{{ flow_run.start_time|humanize_naturaltime }} {{ 1234567|humanize_intcomma }}"
    )
    with template_ui_base("https://h/account/a/workspace/w"):
        rendered = template_render(template, context)
    base = "https://h/account/a/workspace/w/"
    assert rendered.split(" ") == [
        f"{base}runs/flow-run/r-1", f"{base}automations/automation/a-1", f"{base}events?resource=prefect.automation.a-1",
        f"{base}events?resource=prefect.flow-run.r-1", f"{base}events/event/{now:%Y-%m-%d}/e-1",
        "0f0e8c9a-1b2c-4d5e-8f90-a1b2c3d4e5f6", "3", "hours", "ago", "1,234,567",
    ]  # fmt: skip
    # No UI to link to (outside an action): None, as Prefect's filters without PREFECT_UI_URL.
    assert template_render("{{ flow_run|ui_url }}", context) == "None"
    assert json.loads(template_render("{{ flow_run|tojson }}", context))["start_time"].endswith("Z")


@pytest.mark.parametrize(
    "template",
    [
        "{{ flow_run|no_such_filter }}",
        "{{ x is no_such_test }}",
        "{{ 'de'|humanize_activate }}",
    ],
)
def test_a_filter_the_sandbox_lacks_is_refused_when_saved(tenant, dev, template):
    """Prefect's server only parses; here templates are compiled too, so the mistake is refused at
    once instead of failing every firing. (humanize's language switch is left out: it would
    change every workspace's rendering.)"""
    response = dev.post(
        f"{tenant.prefix}/templates/validate", json.dumps(template), content_type="application/json"
    )
    assert response.status_code == 422
    assert "No " in response.json()["error"]["message"]
    body = {"name": "a", "trigger": {"type": "event", "expect": ["x"]},
            "actions": [{"type": "send-notification", "block_document_id": "00000000-0000-0000-0000-000000000001",
                         "body": template}]}  # fmt: skip
    response = dev.post(f"{tenant.prefix}/automations/", body, format="json")
    assert response.status_code == 422
    assert "is not a valid template" in json.dumps(response.json())
    response = dev.post(f"{tenant.prefix}/templates/validate", json.dumps("{{ x|ui_url }}"),
                        content_type="application/json")  # fmt: skip
    assert response.status_code == 204


def test_a_template_nested_deeper_than_python_compiles_is_refused(tenant, dev):
    template = "{% macro m() %}" * 120 + "x" + "{% endmacro %}" * 120
    response = dev.post(
        f"{tenant.prefix}/templates/validate", json.dumps(template), content_type="application/json"
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "template nesting too deep"
