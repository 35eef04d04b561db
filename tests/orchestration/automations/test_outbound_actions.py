"""The remaining actions, each through the service the API uses: pause/resume work pool and work
queue, suspend/resume flow run, call-webhook and send-notification (Slack, Teams, custom webhook,
email), with templates rendered in the sandbox, internal addresses refused and the block's
secrets kept out of events, logs and the audit trail. HTTP goes to a real local receiver that the
operator's setting allows."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail

from audit.models import AuditLogEntry
from core.outbound import OutboundResponse
from orchestration.models import AutomationFiring, BlockSchema, FlowRun, WorkPool, WorkQueue
from orchestration.services import notifications
from tests.orchestration.automations.engine import action_runs, automation, emit, emitted, event
from tests.peers.http_receiver import Receiver

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-t0ken"


@pytest.fixture
def receiver(settings):
    settings.OUTBOUND_WEBHOOK_ALLOWED_CIDRS = ["127.0.0.1/32"]
    peer = Receiver()
    yield peer
    peer.close()


def _block(dev, tenant, slug: str, data: dict, name="hook") -> str:
    assert dev.get(f"{tenant.prefix}/block_types/slug/{slug}").status_code == 200  # system types installed
    schema = BlockSchema.objects.for_workspace(tenant.workspace.id).get(block_type__slug=slug)
    body = {
        "name": name,
        "block_type_id": str(schema.block_type_id),
        "block_schema_id": str(schema.id),
        "data": data,
    }
    response = dev.post(f"{tenant.prefix}/block_documents/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def _nothing_secret_leaked(tenant, caplog):
    events = [e for e in emitted(tenant, "prefect.automation.action.executed")] + emitted(
        tenant, "prefect.automation.action.failed"
    )
    assert events
    for e in events:
        assert SECRET not in json.dumps([e.payload, e.related, e.resource])
    assert SECRET not in caplog.text
    entries = list(AuditLogEntry.objects.values())
    assert entries  # the block's creation, at least
    assert SECRET not in json.dumps(entries, default=str)


def test_call_webhook_sends_the_rendered_payload(
    tenant, dev, receiver, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    block = _block(dev, tenant, "webhook", {"url": f"{receiver.url}/hook?token={SECRET}", "method": "POST",
                                            "headers": {"Authorization": f"Bearer {SECRET}"}})  # fmt: skip
    receiver.route("/hook", body=b'{"ok": true}', headers={"Set-Cookie": f"session={SECRET}"})
    payload = '{"order": "{{ event.resource["prefect.resource.id"] }}", "by": "{{ automation.name }}"}'
    automation(dev, tenant, name="notify-shop", expect=["order.placed"],
               actions=[{"type": "call-webhook", "block_document_id": block, "payload": payload}])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant, event("order.placed", resource="shop.order.7"))
    (request,) = receiver.requests
    assert json.loads(request["body"]) == {"order": "shop.order.7", "by": "notify-shop"}
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"
    (executed,) = emitted(tenant, "prefect.automation.action.executed")
    assert executed.payload["status_code"] == 200 and executed.payload["response_body"] == '{"ok": true}'
    assert {"prefect.resource.id": f"prefect.block-document.{block}", "prefect.resource.role": "block",
            "prefect.resource.name": "hook"} in executed.related  # fmt: skip
    _nothing_secret_leaked(tenant, caplog)


def test_a_compound_firings_events_and_labels_reach_the_template(
    tenant, dev, receiver, django_capture_on_commit_callbacks
):
    """Prefect's template context: ``firings`` and ``events`` hold the compound firing and the child
    firings it consumed (depth first) and their events; ``labels`` walks dotted names."""
    block = _block(dev, tenant, "webhook", {"url": f"{receiver.url}/hook", "method": "POST"})
    receiver.route("/hook", body=b"ok")
    payload = (
        '{"events": [{% for e in events %}"{{ e.event }} {{ e.resource.id }}"{{ "," if not loop.last }}'
        '{% endfor %}], "firings": {{ firings | length }}, "first": "{{ firings[0].id }}",'
        ' "child_labels": "{{ firings[1].triggering_labels.prefect.resource.id }}",'
        ' "labels": {{ labels | tojson }}}'
    )
    body = {
        "name": "both",
        "trigger": {"type": "compound", "require": "all", "within": 600, "triggers": [
            {"type": "event", "posture": "Reactive", "expect": [name], "threshold": 1,
             "for_each": ["prefect.resource.id"]} for name in ("order.placed", "order.paid")
        ]},
        "actions": [{"type": "call-webhook", "block_document_id": block, "payload": payload}],
    }  # fmt: skip
    assert dev.post(f"{tenant.prefix}/automations/", body, format="json").status_code == 201
    emit(django_capture_on_commit_callbacks, tenant, event("order.placed", resource="shop.order.7"))
    emit(django_capture_on_commit_callbacks, tenant, event("order.paid", seconds=1, resource="shop.order.7"))
    (request,) = receiver.requests
    sent = json.loads(request["body"])
    # The compound firing carries its last child's event, then each child's own, in firing order.
    assert sent["events"] == [
        "order.paid shop.order.7",
        "order.placed shop.order.7",
        "order.paid shop.order.7",
    ]
    assert sent["firings"] == 3
    (acted,) = [f for f in AutomationFiring.objects.for_workspace(tenant.workspace.id) if f.actions]
    assert sent["first"] == str(acted.id)
    assert sent["child_labels"] == "shop.order.7" and sent["labels"] == {}


def test_an_answer_with_a_nul_character_is_reported_storable(
    tenant, dev, receiver, django_capture_on_commit_callbacks
):
    """No event or row keeps a NUL character: the answer is reported with U+FFFD in its place (and
    cut at 1000 characters), and the action is recorded and announced as any other."""
    receiver.route("/hook", body=b'{"ok": "\x00"}' + b"\x00" * 3000)
    block = _block(dev, tenant, "webhook", {"url": f"{receiver.url}/hook", "method": "POST", "headers": {}})
    automation(dev, tenant, expect=["x"], actions=[{"type": "call-webhook", "block_document_id": block}])
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    assert [r.state for r in action_runs(tenant)] == ["executed"]
    (executed,) = emitted(tenant, "prefect.automation.action.executed")
    body = executed.payload["response_body"]
    assert len(body) == notifications.ANSWER_BODY_CHARS and body.startswith('{"ok": "\ufffd"}\ufffd')
    assert "\x00" not in json.dumps(executed.payload, ensure_ascii=False)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/", "http://[::1]/"]
)
def test_call_webhook_to_an_internal_address_fails(
    tenant, dev, caplog, django_capture_on_commit_callbacks, url
):
    block = _block(dev, tenant, "webhook", {"url": url + f"?t={SECRET}", "method": "POST", "headers": {}})
    automation(dev, tenant, expect=["x"], actions=[{"type": "call-webhook", "block_document_id": block}])
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"].startswith("Webhook call failed: ")
    assert "which the server does not call" in failed.payload["reason"]
    _nothing_secret_leaked(tenant, caplog)


def test_a_redirect_to_the_metadata_address_fails(tenant, dev, receiver, django_capture_on_commit_callbacks):
    receiver.route("/hook", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    block = _block(dev, tenant, "webhook", {"url": f"{receiver.url}/hook", "method": "POST", "headers": {}})
    automation(dev, tenant, expect=["x"], actions=[{"type": "call-webhook", "block_document_id": block}])
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert "169.254.169.254" in failed.payload["reason"]
    assert len(receiver.requests) == 1


def test_call_webhook_needs_a_webhook_block(tenant, dev, django_capture_on_commit_callbacks):
    block = _block(dev, tenant, "secret", {"value": SECRET})
    automation(dev, tenant, expect=["x"], actions=[{"type": "call-webhook", "block_document_id": block}])
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"] == "The referenced block was not a webhook block"


def test_a_notification_reaches_slack(tenant, dev, receiver, caplog, django_capture_on_commit_callbacks):
    block = _block(dev, tenant, "slack-webhook", {"url": f"{receiver.url}/services/{SECRET}"})
    automation(dev, tenant, expect=["prefect.flow-run.Failed"], actions=[{
        "type": "send-notification", "block_document_id": block, "subject": "Run {{ event.resource['prefect.resource.name'] }}",
        "body": "{{ event.event }} at {{ labels | tojson }}",
    }])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant,
         event("prefect.flow-run.Failed", **{"prefect.resource.name": "sleepy-cat"}))  # fmt: skip
    (request,) = receiver.requests
    assert json.loads(request["body"]) == {"text": "*Run sleepy-cat*\nprefect.flow-run.Failed at {}"}
    assert [r.state for r in action_runs(tenant)] == ["executed"]
    _nothing_secret_leaked(tenant, caplog)


def _apprise_workflows_payload(url: str, block: dict, subject: str, body: str) -> dict:
    """What Prefect 3's ``MicrosoftTeamsWebhook`` block has Apprise post for that block."""
    from apprise import AppriseAsset
    from apprise.common import NotifyType
    from apprise.plugins.workflows import NotifyWorkflows

    parsed = NotifyWorkflows.parse_native_url(url)
    assert parsed, url
    parsed |= {"include_image": block.get("include_image", True), "wrap": block.get("wrap", True)}
    asset = AppriseAsset(app_id="Prefect Notifications", app_desc="Prefect Notifications",
                         app_url="https://prefect.io")  # fmt: skip
    sender = NotifyWorkflows(**parsed, asset=asset)
    return sender.gen_payload(
        body=body, title=subject, notify_type=NotifyType(block.get("notify_type", "info"))
    )


@pytest.mark.parametrize(
    ("path", "block"),
    [
        ("/workflows/0a1b2c3d4e/triggers/manual/paths/invoke", {}),
        ("/powerautomate/automations/direct/workflows/0a1b2c3d4e/triggers/manual/paths/invoke",
         {"include_image": False, "wrap": False, "notify_type": "failure"}),
    ],
)  # fmt: skip
def test_teams_gets_the_adaptive_card_prefects_block_sends_a_workflow(
    tenant, dev, receiver, caplog, django_capture_on_commit_callbacks, path, block
):
    """Prefect 3's Teams block takes a Power Automate (Workflows) URL and sends, through Apprise,
    an Adaptive Card as a message attachment (no legacy MessageCard, which Workflows drop)."""
    url = f"{receiver.url}{path}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SECRET}"
    block_id = _block(dev, tenant, "ms-teams-webhook", {"url": url, **block})
    automation(dev, tenant, expect=["prefect.flow-run.Failed"], actions=[{
        "type": "send-notification", "block_document_id": block_id,
        "subject": "Run {{ event.resource['prefect.resource.name'] }}", "body": "{{ event.event }}, <at>ann</at>",
    }])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant,
         event("prefect.flow-run.Failed", **{"prefect.resource.name": "sleepy-cat"}))  # fmt: skip
    (request,) = receiver.requests
    assert request["path"] == url.removeprefix(receiver.url)
    assert request["headers"]["Content-Type"] == "application/json"
    sent = json.loads(request["body"])
    assert sent == _apprise_workflows_payload(
        url, block, "Run sleepy-cat", "prefect.flow-run.Failed, <at>ann</at>"
    )
    assert sent["type"] == "message"
    (attachment,) = sent["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard"
    assert [r.state for r in action_runs(tenant)] == ["executed"]
    _nothing_secret_leaked(tenant, caplog)


def test_a_legacy_teams_connector_gets_a_message_card(
    tenant, dev, monkeypatch, django_capture_on_commit_callbacks
):
    """A legacy Office 365 connector URL (which Prefect 3's block no longer takes) is sent the
    MessageCard Apprise's retired ``msteams`` plugin sent it."""
    sent = []

    def outside(method, url, **kwargs):  # Microsoft's address lies outside this machine
        sent.append((method, url, json.loads(kwargs["content"])))
        return OutboundResponse(status_code=200, headers={}, content=b"1")

    monkeypatch.setattr(notifications, "outbound_request", outside)
    url = f"https://acme.webhook.office.com/webhookb2/a1@b2/IncomingWebhook/c3/d4/V2{SECRET}"
    block = _block(dev, tenant, "ms-teams-webhook", {"url": url, "notify_type": "warning"})
    automation(dev, tenant, expect=["x"], actions=[
        {"type": "send-notification", "block_document_id": block, "subject": "Heads up", "body": "{{ event.event }}"}
    ])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    assert sent == [("POST", url, {
        "@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": "Prefect Notifications",
        "themeColor": "#CACF29",
        "sections": [{"activityImage": "https://github.com/caronc/apprise/raw/master/apprise/assets/themes/default/apprise-warning-72x72.png",
                      "activityTitle": "Heads up", "text": "x"}],
    })]  # fmt: skip
    assert [r.state for r in action_runs(tenant)] == ["executed"]


def test_a_teams_block_with_another_url_fails_with_prefects_reason(
    tenant, dev, receiver, django_capture_on_commit_callbacks
):
    block = _block(dev, tenant, "ms-teams-webhook", {"url": f"{receiver.url}/services/{SECRET}"})
    automation(dev, tenant, expect=["x"], actions=[{"type": "send-notification", "block_document_id": block,
                                                    "body": "hi"}])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    assert receiver.requests == []
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"] == "Invalid Microsoft Teams Workflow URL provided."


def _services_at(monkeypatch, receiver) -> None:
    """The services' fixed addresses point at the local receiver (they lie outside this machine)."""
    for name in notifications.SERVICE_URLS:
        monkeypatch.setitem(notifications.SERVICE_URLS, name, f"{receiver.url}/{name}")


def _notify(dev, tenant, django_capture_on_commit_callbacks, slug: str, data: dict) -> None:
    block = _block(dev, tenant, slug, data)
    automation(dev, tenant, expect=["prefect.flow-run.Failed"], actions=[{
        "type": "send-notification", "block_document_id": block, "subject": "Run {{ event.resource['prefect.resource.name'] }}",
        "body": "{{ event.event }} happened",
    }])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant,
         event("prefect.flow-run.Failed", **{"prefect.resource.name": "sleepy-cat"}))  # fmt: skip


def test_discord(tenant, dev, receiver, monkeypatch, caplog, django_capture_on_commit_callbacks):
    _services_at(monkeypatch, receiver)
    _notify(dev, tenant, django_capture_on_commit_callbacks, "discord-webhook",
            {"webhook_id": "1234", "webhook_token": SECRET, "botname": "prefect-bot"})  # fmt: skip
    (request,) = receiver.requests
    assert request["path"] == f"/discord/1234/{SECRET}"
    assert json.loads(request["body"]) == {"tts": False, "wait": True, "username": "prefect-bot",
                                           "content": "**Run sleepy-cat**\r\nprefect.flow-run.Failed happened"}  # fmt: skip
    assert [r.state for r in action_runs(tenant)] == ["executed"]
    _nothing_secret_leaked(tenant, caplog)


def test_mattermost_posts_once_per_channel(tenant, dev, receiver, caplog, django_capture_on_commit_callbacks):
    port = urlsplit(receiver.url).port
    _notify(dev, tenant, django_capture_on_commit_callbacks, "mattermost-webhook",
            {"hostname": "127.0.0.1", "port": port, "token": SECRET, "channels": ["ops", "data"]})  # fmt: skip
    assert [r["path"] for r in receiver.requests] == [f"/hooks/{SECRET}"] * 2
    assert [json.loads(r["body"]) for r in receiver.requests] == [
        {"text": "###### Run sleepy-cat\nprefect.flow-run.Failed happened", "channel": channel}
        for channel in ("ops", "data")
    ]
    _nothing_secret_leaked(tenant, caplog)


@pytest.mark.parametrize("region", ["us", "eu"])
def test_pagerduty(tenant, dev, receiver, monkeypatch, caplog, django_capture_on_commit_callbacks, region):
    _services_at(monkeypatch, receiver)
    _notify(dev, tenant, django_capture_on_commit_callbacks, "pager-duty-webhook", {
        "integration_key": f"routing-{SECRET}", "api_key": SECRET, "notify_type": "failure", "region_name": region,
        "component": "etl", "group": "data", "custom_details": {"team": "platform"},
        "clickable_url": "https://runs.example.test/1",
    })  # fmt: skip
    (request,) = receiver.requests
    assert request["path"] == f"/pagerduty-{region}"
    assert request["headers"]["Authorization"] == f"Token token={SECRET}"
    assert json.loads(request["body"]) == {
        "routing_key": f"routing-{SECRET}", "event_action": "trigger", "client": "Prefect",
        "payload": {"summary": "Run sleepy-cat\nprefect.flow-run.Failed happened", "severity": "critical",
                    "source": "Prefect", "component": "etl", "group": "data", "custom_details": {"team": "platform"}},
        "links": [{"href": "https://runs.example.test/1"}],
    }  # fmt: skip
    _nothing_secret_leaked(tenant, caplog)


def test_opsgenie(tenant, dev, receiver, monkeypatch, caplog, django_capture_on_commit_callbacks):
    _services_at(monkeypatch, receiver)
    _notify(dev, tenant, django_capture_on_commit_callbacks, "opsgenie-webhook", {
        "apikey": SECRET, "target_team": ["sre"], "target_user": ["ann@example.test"], "tags": ["prefect"],
        "priority": 2, "alias": "etl-failed",
    })  # fmt: skip
    (request,) = receiver.requests
    assert request["path"] == "/opsgenie-us"
    assert request["headers"]["Authorization"] == f"GenieKey {SECRET}"
    assert json.loads(request["body"]) == {
        "source": "Prefect", "message": "Run sleepy-cat", "description": "prefect.flow-run.Failed happened",
        "details": {"type": "info"}, "priority": "P2", "tags": ["prefect"], "alias": "etl-failed",
        "responders": [{"type": "user", "username": "ann@example.test"}, {"type": "team", "name": "sre"}],
    }  # fmt: skip
    _nothing_secret_leaked(tenant, caplog)


def test_twilio_sends_one_message_per_number(
    tenant, dev, receiver, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    _services_at(monkeypatch, receiver)
    _notify(dev, tenant, django_capture_on_commit_callbacks, "twilio-sms", {
        "account_sid": "AC123", "auth_token": SECRET, "from_phone_number": "+15550100",
        "to_phone_numbers": ["+15550101", "+15550102"],
    })  # fmt: skip
    assert [r["path"] for r in receiver.requests] == ["/twilio/AC123/Messages.json"] * 2
    credentials = base64.b64encode(f"AC123:{SECRET}".encode()).decode()
    assert {r["headers"]["Authorization"] for r in receiver.requests} == {f"Basic {credentials}"}
    assert [parse_qs(r["body"].decode()) for r in receiver.requests] == [
        {"Body": ["Run sleepy-cat\r\nprefect.flow-run.Failed happened"], "From": ["+15550100"], "To": [to]}
        for to in ("+15550101", "+15550102")
    ]
    _nothing_secret_leaked(tenant, caplog)


def test_a_service_at_an_internal_address_is_refused_like_any_webhook(
    tenant, dev, receiver, monkeypatch, settings, django_capture_on_commit_callbacks
):
    _services_at(monkeypatch, receiver)
    settings.OUTBOUND_WEBHOOK_ALLOWED_CIDRS = []
    _notify(dev, tenant, django_capture_on_commit_callbacks, "discord-webhook",
            {"webhook_id": "1", "webhook_token": SECRET})  # fmt: skip
    assert receiver.requests == []
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"] == "Notification failed"


def test_a_block_without_what_its_service_needs_fails_with_the_reason(
    tenant, dev, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    _services_at(monkeypatch, receiver)
    _notify(dev, tenant, django_capture_on_commit_callbacks, "twilio-sms", {
        "account_sid": "AC123", "auth_token": SECRET, "from_phone_number": "+15550100", "to_phone_numbers": [],
    })  # fmt: skip
    assert receiver.requests == []
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"] == "The notification block has no to_phone_numbers"


def test_a_receiver_that_refuses_fails_the_notification(
    tenant, dev, receiver, django_capture_on_commit_callbacks
):
    receiver.route("/services/x", status=404, body=b"no_team")
    block = _block(dev, tenant, "slack-webhook", {"url": f"{receiver.url}/services/x"})
    automation(dev, tenant, expect=["x"], actions=[
        {"type": "send-notification", "block_document_id": block, "body": "hi"}])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"] == "Notification failed"
    assert failed.payload["notification_log"] == "The receiver answered 404"


def test_a_custom_webhook_notification(tenant, dev, receiver, caplog, django_capture_on_commit_callbacks):
    block = _block(dev, tenant, "custom-webhook", {
        "name": "pager", "url": f"{receiver.url}/custom", "method": "POST",
        "json_data": {"text": "{{subject}}: {{body}}", "token": "{{tokenFromSecrets}}", "from": "{{name}}"},
        "params": {"channel": "ops"}, "secrets": {"tokenFromSecrets": SECRET}, "timeout": 5,
    })  # fmt: skip
    automation(dev, tenant, expect=["x"], actions=[
        {"type": "send-notification", "block_document_id": block, "subject": "alert", "body": "{{ event.event }}"}
    ])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (request,) = receiver.requests
    assert request["path"] == "/custom?channel=ops"
    assert json.loads(request["body"]) == {"text": "alert: x", "token": SECRET, "from": "pager"}
    _nothing_secret_leaked(tenant, caplog)


def test_an_email_notification_goes_through_the_mail_backend(tenant, dev, django_capture_on_commit_callbacks):
    block = _block(dev, tenant, "sendgrid-email", {"api_key": SECRET, "sender_email": "alerts@example.test",
                                                   "to_emails": ["ops@example.test"]})  # fmt: skip
    automation(dev, tenant, expect=["x"], actions=[
        {"type": "send-notification", "block_document_id": block, "subject": "{{ event.event }} happened",
         "body": "body"}])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (message,) = mail.outbox
    assert (message.subject, message.to, message.from_email) == ("x happened", ["ops@example.test"],
                                                                  "alerts@example.test")  # fmt: skip
    assert SECRET not in message.message().as_string()


def test_pause_and_resume_work_pool_and_queue(tenant, dev, django_capture_on_commit_callbacks):
    response = dev.post(f"{tenant.prefix}/work_pools/", {"name": "pool", "type": "process"}, format="json")
    assert response.status_code == 201, response.json()
    pool_id = response.json()["id"]
    queue_id = response.json()["default_queue_id"]
    automation(dev, tenant, name="p", expect=["stop"], actions=[
        {"type": "pause-work-pool", "source": "selected", "work_pool_id": pool_id},
        {"type": "pause-work-queue", "source": "inferred"},
    ])  # fmt: skip
    automation(dev, tenant, name="r", expect=["go"], actions=[
        {"type": "resume-work-pool", "source": "inferred"},
        {"type": "resume-work-queue", "source": "selected", "work_queue_id": queue_id},
    ])  # fmt: skip
    queue_related = [
        {"prefect.resource.id": f"prefect.work-queue.{queue_id}", "prefect.resource.role": "work-queue"}
    ]
    emit(django_capture_on_commit_callbacks, tenant, event("stop", related=queue_related))
    pool = WorkPool.objects.for_workspace(tenant.workspace.id).get(id=pool_id)
    queue = WorkQueue.objects.for_workspace(tenant.workspace.id).get(id=queue_id)
    assert pool.is_paused and queue.is_paused
    emit(django_capture_on_commit_callbacks, tenant, event("go", resource=f"prefect.work-pool.{pool_id}"))
    pool.refresh_from_db()
    queue.refresh_from_db()
    assert not pool.is_paused and not queue.is_paused
    assert [r.state for r in action_runs(tenant)] == ["executed"] * 4


def test_suspend_and_resume_flow_run(tenant, dev, django_capture_on_commit_callbacks):
    flow = dev.post(f"{tenant.prefix}/flows/", {"name": "work"}, format="json").json()["id"]
    deployment = dev.post(
        f"{tenant.prefix}/deployments/", {"name": "d", "flow_id": flow}, format="json"
    ).json()["id"]
    body = {"flow_id": flow, "deployment_id": deployment, "state": {"type": "RUNNING", "name": "Running"}}
    response = dev.post(f"{tenant.prefix}/flow_runs/", body, format="json")
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    automation(dev, tenant, name="s", expect=["hold"], actions=[{"type": "suspend-flow-run"}])
    automation(dev, tenant, name="r", expect=["release"], actions=[{"type": "resume-flow-run"}])
    emit(django_capture_on_commit_callbacks, tenant, event("hold", resource=f"prefect.flow-run.{run_id}"))
    run = FlowRun.objects.for_workspace(tenant.workspace.id).select_related("state").get(id=run_id)
    assert (run.state.type, run.state.name) == ("PAUSED", "Suspended")
    assert run.state.state_details["pause_reschedule"] is True
    emit(django_capture_on_commit_callbacks, tenant, event("release", resource=f"prefect.flow-run.{run_id}"))
    run = FlowRun.objects.for_workspace(tenant.workspace.id).select_related("state").get(id=run_id)
    assert (run.state.type, run.state.name) == ("SCHEDULED", "Resuming")
    # Resuming a run that is not paused fails with Prefect's reason.
    emit(
        django_capture_on_commit_callbacks,
        tenant,
        event("release", seconds=1, resource=f"prefect.flow-run.{run_id}"),
    )
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert (
        failed.payload["reason"] == "Failed to resume flow run: Cannot resume a flow run that is not paused."
    )


def test_delete_flow_run(tenant, dev, django_capture_on_commit_callbacks):
    flow = dev.post(f"{tenant.prefix}/flows/", {"name": "work"}, format="json").json()["id"]
    run_id = dev.post(f"{tenant.prefix}/flow_runs/", {"flow_id": flow}, format="json").json()["id"]
    automation(dev, tenant, name="d", expect=["drop"], actions=[{"type": "delete-flow-run"}])
    emit(django_capture_on_commit_callbacks, tenant, event("drop", resource=f"prefect.flow-run.{run_id}"))
    assert not FlowRun.objects.for_workspace(tenant.workspace.id).filter(id=run_id).exists()
    (executed,) = emitted(tenant, "prefect.automation.action.executed")
    assert {"prefect.resource.id": f"prefect.flow-run.{run_id}", "prefect.resource.role": "target"} in [
        {k: v for k, v in related.items() if k in ("prefect.resource.id", "prefect.resource.role")}
        for related in executed.related
    ]
    # A run already gone fails with the API's reason.
    emit(
        django_capture_on_commit_callbacks,
        tenant,
        event("drop", seconds=1, resource=f"prefect.flow-run.{run_id}"),
    )
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert "not found" in failed.payload["reason"].lower()
