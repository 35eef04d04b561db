"""Incoming webhooks: Prefect Cloud's ``/webhooks`` routes per workspace, and the receiver at
``/hooks/<slug>`` that turns a request into events through the sandboxed template."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
import uuid

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from access.limits import Bucket, limit_of, retry_after_for
from accounts.api_keys.services import api_key_create
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from core import ratelimit
from orchestration.models import Event, FlowRun, Webhook
from tests.conftest import bearer, make_tenant
from tests.factories import ServiceAccountFactory
from tests.orchestration.automations.engine import automation, emitted

pytestmark = pytest.mark.django_db

TEMPLATE = json.dumps(
    {
        "event": "shop.order.{{ body.status }}",
        "resource": {
            "prefect.resource.id": "shop.order.{{ body.id }}",
            "prefect.resource.name": "{{ body.who }}",
        },
        "payload": {"total": "{{ body.total }}", "source": "{{ headers['x-source'] }}", "q": "{{ query.k }}"},
    }
)


def body(name="orders", **overrides) -> dict:
    return {"name": name, "template": TEMPLATE, **overrides}


def create(client, tenant, **overrides) -> dict:
    answer = client.post(f"{tenant.prefix}/webhooks/", body(**overrides), format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def events(tenant, name=None):
    rows = Event.objects.for_workspace(tenant.workspace.id).order_by("occurred")
    return list(rows.filter(event=name) if name else rows.exclude(event__startswith="prefect.automation."))


def hook(slug, data=b"", *, method="post", content_type="application/json", **headers):
    return getattr(Client(), method)(f"/hooks/{slug}", data=data, content_type=content_type, **headers)


ORDER = {"id": 7, "status": "placed", "who": "ada", "total": 12.5}


class TestManage:
    def test_create_read_filter_update_rotate_delete_with_audit(self, tenant, dev):
        created = create(dev, tenant, description="orders from the shop")
        assert set(created) >= {"id", "name", "description", "enabled", "template", "slug", "account_id",
                                "workspace_id", "service_account_id", "created", "updated"}  # fmt: skip
        assert len(created["slug"]) >= 20 and created["enabled"] is True
        assert created["account_id"] == str(tenant.account.id) and created["signature_scheme"] == "none"
        url = f"{tenant.prefix}/webhooks/{created['id']}"
        assert dev.get(url).json()["name"] == "orders"
        create(dev, tenant, name="other")
        listed = dev.post(f"{tenant.prefix}/webhooks/filter", {"webhooks": {"name": {"any_": ["orders"]}}},
                          format="json").json()  # fmt: skip
        assert [w["id"] for w in listed] == [created["id"]]
        assert dev.patch(url, {"enabled": False}, format="json").status_code == 204
        assert dev.get(url).json()["enabled"] is False
        assert dev.put(url, body(name="renamed"), format="json").status_code == 204
        assert dev.get(url).json() | {"updated": None} == created | {"name": "renamed", "description": "",
                                                                    "updated": None}  # fmt: skip
        rotated = dev.post(f"{url}/rotate").json()
        assert rotated["slug"] != created["slug"]
        assert dev.delete(url).status_code == 204
        assert dev.get(url).status_code == 404
        logged = list(
            AuditLogEntry.objects.filter(workspace=tenant.workspace).values_list("api_name", flat=True)
        )
        assert logged.count("webhook.created") == 2
        assert {"webhook.updated", "webhook.rotated", "webhook.deleted"} <= set(logged)

    @pytest.mark.parametrize(
        ("template", "fragment"),
        [
            ('{"event": "{{ body.x }"}', "Invalid template"),
            (
                "{% for a in b %}{% for c in d %}{% for e in f %}{% endfor %}{% endfor %}{% endfor %}",
                "nested",
            ),
            ('{"event": "{{ body.x|no_such_filter }}"}', "No filter named 'no_such_filter'"),
            ("not json", "static template must be JSON"),
            ("42", "event object or a list"),
        ],
    )
    def test_a_bad_template_is_refused_at_save_time_with_the_error(self, tenant, dev, template, fragment):
        answer = dev.post(f"{tenant.prefix}/webhooks/", body(template=template), format="json")
        assert answer.status_code == 422
        assert fragment in json.dumps(answer.json())
        assert not Webhook.objects.for_workspace(tenant.workspace.id).exists()

    def test_a_signature_scheme_needs_a_secret_which_is_never_answered(self, tenant, dev):
        refused = dev.post(f"{tenant.prefix}/webhooks/", body(signature_scheme="hmac-sha256"), format="json")
        assert refused.status_code == 422
        made = create(dev, tenant, signature_scheme="hmac-sha256", signature_secret="s" * 32)
        assert made["has_signature_secret"] is True and "s" * 32 not in json.dumps(made)
        stored = Webhook.objects.for_workspace(tenant.workspace.id).get()
        assert "s" * 32 not in stored.secret
        entries = AuditLogEntry.objects.filter(workspace=tenant.workspace)
        assert "s" * 32 not in json.dumps([e.payload for e in entries])

    def test_the_hobby_plan_allows_one_webhook(self, api_client):
        hobby = make_tenant(plan="hobby")
        client = bearer(api_client, hobby.service_key)
        create(client, hobby)
        refused = client.post(f"{hobby.prefix}/webhooks/", body(name="second"), format="json")
        assert refused.status_code == 403 and "Hobby" in refused.json()["detail"]

    def test_a_service_account_of_another_account_is_refused(self, tenant, dev):
        stranger = make_tenant().service_account
        answer = dev.post(
            f"{tenant.prefix}/webhooks/", body(service_account_id=str(stranger.id)), format="json"
        )
        assert answer.status_code == 422


class TestScopesAndTenancy:
    def test_role_matrix(self, tenant, role_client, dev):
        made = create(dev, tenant)
        url = f"{tenant.prefix}/webhooks/{made['id']}"
        for role in ("viewer", "runner"):
            client = role_client(role)
            assert client.get(url).status_code == 200
            assert client.post(f"{tenant.prefix}/webhooks/filter", {}, format="json").status_code == 200
            assert client.post(f"{tenant.prefix}/webhooks/", body(), format="json").status_code == 403
            assert client.patch(url, {"enabled": False}, format="json").status_code == 403
            assert client.post(f"{url}/rotate").status_code == 403
            assert client.delete(url).status_code == 403
        worker = role_client("worker")
        assert worker.get(url).status_code == 403
        owner = role_client("owner")
        assert owner.patch(url, {"enabled": False}, format="json").status_code == 204
        assert Webhook.objects.for_workspace(tenant.workspace.id).get().slug == made["slug"]

    def test_another_workspaces_webhook_is_404(self, two_workspaces, api_client):
        a, b = two_workspaces
        made = create(bearer(api_client, a.service_key), a)
        as_b = bearer(api_client, b.service_key)
        url = f"{b.prefix}/webhooks/{made['id']}"
        assert as_b.get(url).status_code == 404
        assert as_b.put(url, body(name="stolen"), format="json").status_code == 404
        assert as_b.patch(url, {"enabled": False}, format="json").status_code == 404
        assert as_b.post(f"{url}/rotate").status_code == 404
        assert as_b.delete(url).status_code == 404
        assert as_b.post(f"{b.prefix}/webhooks/filter", {}, format="json").json() == []
        assert Webhook.objects.for_workspace(a.workspace.id).get().name == "orders"


class TestReceive:
    def test_a_json_body_becomes_an_event_naming_the_webhook(self, tenant, dev):
        made = create(dev, tenant)
        answer = hook(made["slug"] + "?k=v", json.dumps(ORDER), HTTP_X_SOURCE="shop")
        assert answer.status_code == 204, answer.content
        (stored,) = events(tenant)
        assert stored.event == "shop.order.placed" and stored.resource_id == "shop.order.7"
        assert stored.payload == {"total": "12.5", "source": "shop", "q": "v"}
        assert {"prefect.resource.id": f"prefect-cloud.webhook.{made['id']}", "prefect.resource.name": "orders",
                "prefect.resource.role": "webhook"} in stored.related  # fmt: skip

    def test_form_and_raw_bodies_and_a_list_of_events(self, tenant, dev):
        form = create(dev, tenant, name="form")
        assert hook(form["slug"], "id=8&status=paid&who=bo&total=3",
                    content_type="application/x-www-form-urlencoded").status_code == 204  # fmt: skip
        raw_template = json.dumps([
            {"event": "raw.line", "resource": {"prefect.resource.id": "raw.{{ loop_index }}"},
             "payload": {"text": "{{ raw_body }}", "method": "{{ method }}"}},
            {"event": "raw.seen", "resource": {"prefect.resource.id": "raw.x"}},
        ])  # fmt: skip
        raw = create(dev, tenant, name="raw", template=raw_template)
        assert hook(raw["slug"], "hello there", content_type="text/plain").status_code == 204
        names = sorted(e.event for e in events(tenant))
        assert names == ["raw.line", "raw.seen", "shop.order.paid"]
        assert events(tenant, "raw.line")[0].payload == {"text": "hello there", "method": "POST"}
        assert events(tenant, "shop.order.paid")[0].resource["prefect.resource.name"] == "bo"

    def test_a_static_template_takes_a_get(self, tenant, dev):
        static = '{"event": "model.updated", "resource": {"prefect.resource.id": "model.recs"}}'
        made = create(dev, tenant, template=static)
        assert hook(made["slug"], method="get").status_code == 204
        assert [e.event for e in events(tenant)] == ["model.updated"]

    @pytest.mark.parametrize(
        ("data", "content_type", "reason"),
        [
            ("{not json", "application/json", "not valid JSON"),
            # The resource id renders empty.
            (json.dumps({"id": 1}), "application/json", "prefect.resource.id"),
        ],
    )
    def test_a_request_that_renders_no_valid_event_is_400_and_seen_by_the_workspace(
        self, tenant, dev, data, content_type, reason
    ):
        template = json.dumps(
            {"event": "x.{{ body.id }}", "resource": {"prefect.resource.id": "{{ body.rid }}"}}
        )
        made = create(dev, tenant, template=template)
        answer = hook(made["slug"], data, content_type=content_type)
        assert answer.status_code == 400 and reason in answer.json()["detail"]
        (failed,) = events(tenant, "prefect-cloud.webhook.failed")
        assert failed.resource_id == f"prefect-cloud.webhook.{made['id']}"
        assert reason in failed.payload["reason"] and failed.payload["body"] == data
        assert events(tenant) == [failed]

    def test_a_template_that_fails_to_render_is_400(self, tenant, dev):
        made = create(dev, tenant, template='{"event": "{{ body.nope() }}", "resource": {}}')
        answer = hook(made["slug"], "{}")
        assert answer.status_code == 400 and "render" in answer.json()["detail"]

    def test_unknown_disabled_and_rotated_slugs_are_404(self, tenant, dev):
        assert hook("nope", "{}").status_code == 404
        made = create(dev, tenant)
        url = f"{tenant.prefix}/webhooks/{made['id']}"
        dev.patch(url, {"enabled": False}, format="json")
        assert hook(made["slug"], json.dumps(ORDER)).status_code == 404
        dev.patch(url, {"enabled": True}, format="json")
        new_slug = dev.post(f"{url}/rotate").json()["slug"]
        assert hook(made["slug"], json.dumps(ORDER)).status_code == 404
        assert hook(new_slug, json.dumps(ORDER)).status_code == 204
        assert len(events(tenant)) == 1

    def test_shared_secret_and_hmac_signatures(self, tenant, dev):
        secret = "a-long-shared-secret-value"
        shared = create(dev, tenant, name="s", signature_scheme="shared-secret", signature_secret=secret)
        data = json.dumps(ORDER)
        assert hook(shared["slug"], data).status_code == 401
        assert hook(shared["slug"], data, HTTP_X_WEBHOOK_SECRET="wrong-secret").status_code == 401
        assert hook(shared["slug"], data, HTTP_X_WEBHOOK_SECRET=secret).status_code == 204
        signed = create(dev, tenant, name="h", signature_scheme="hmac-sha256", signature_secret=secret,
                        signature_header="X-Hub-Signature-256")  # fmt: skip
        digest = hmac.new(secret.encode(), data.encode(), hashlib.sha256).hexdigest()
        assert hook(signed["slug"], data, HTTP_X_HUB_SIGNATURE_256="sha256=" + "0" * 64).status_code == 401
        assert (
            hook(signed["slug"], data + " ", HTTP_X_HUB_SIGNATURE_256=f"sha256={digest}").status_code == 401
        )
        assert hook(signed["slug"], data, HTTP_X_HUB_SIGNATURE_256=f"sha256={digest}").status_code == 204
        assert len(events(tenant, "shop.order.placed")) == 2
        assert len(events(tenant, "prefect-cloud.webhook.failed")) == 4

    def test_a_service_account_key_is_required_when_one_is_named(self, tenant, dev):
        robot = ServiceAccountFactory(account=tenant.account)
        _, key = api_key_create(owner=robot, name="hook", actor=SYSTEM)
        made = create(dev, tenant, service_account_id=str(robot.id))
        data = json.dumps(ORDER)
        assert hook(made["slug"], data).status_code == 401
        assert hook(made["slug"], data, HTTP_AUTHORIZATION=f"Bearer {tenant.service_key}").status_code == 401
        assert hook(made["slug"], data, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 204

    @override_settings(WEBHOOK_RATE_LIMIT_PER_MINUTE=2)
    def test_rate_limited_per_webhook_with_retry_after(self, tenant, dev):
        made = create(dev, tenant, name=f"limited-{uuid.uuid4()}")
        other = create(dev, tenant, name="other")
        data = json.dumps(ORDER)
        assert [hook(made["slug"], data).status_code for _ in range(3)] == [204, 204, 429]
        limited = hook(made["slug"], data)
        assert limited.status_code == 429 and 1 <= int(limited["Retry-After"]) <= 61
        assert hook(other["slug"], data).status_code == 204

    def test_a_suspended_account_s_webhook_is_402_and_stores_nothing(self, tenant, dev):
        made = create(dev, tenant)
        account = tenant.account
        account.billing_status = "past_due"
        account.billing_status_since = timezone.now() - dt.timedelta(days=60)
        account.save(update_fields=["billing_status", "billing_status_since", "updated"])
        refused = hook(made["slug"], json.dumps(ORDER))
        assert refused.status_code == 402 and "suspended" in refused.json()["detail"]
        assert events(tenant) == [] and events(tenant, "prefect-cloud.webhook.failed") == []

    def test_a_body_too_large_is_413(self, tenant, dev):
        made = create(dev, tenant)
        with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=64):
            assert hook(made["slug"], json.dumps({**ORDER, "pad": "x" * 100})).status_code == 413
        assert events(tenant) == []

    def test_end_to_end_a_webhook_request_starts_a_deployment(
        self, tenant, dev, django_capture_on_commit_callbacks
    ):
        flow = dev.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()["id"]
        deployment = dev.post(f"{tenant.prefix}/deployments/", {"name": "ship", "flow_id": flow,
                              "parameters": {"who": "nobody"}}, format="json").json()["id"]  # fmt: skip
        who = {"__prefect_kind": "jinja", "template": "{{ event.resource['prefect.resource.name'] }}"}
        automation(dev, tenant, expect=["shop.order.placed"], match_related={"prefect.resource.role": "webhook"},
                   actions=[{"type": "run-deployment", "source": "selected", "deployment_id": deployment,
                             "parameters": {"who": who}}])  # fmt: skip
        made = create(dev, tenant)
        with django_capture_on_commit_callbacks(execute=True):
            assert hook(made["slug"], json.dumps(ORDER)).status_code == 204
        (run,) = FlowRun.objects.for_workspace(tenant.workspace.id).filter(deployment_id=deployment)
        assert run.parameters == {"who": "ada"}
        assert len(emitted(tenant, "prefect.automation.action.executed")) == 1


def refused_and_seen(tenant, made, answer, status, reason) -> dict:
    """The request was refused with ``status``, nothing of it is stored but the one ``failed``
    event the workspace sees, whose reason says ``reason``; that event's payload."""
    assert answer.status_code == status, answer.content
    assert reason in answer.json()["detail"]
    (failed,) = events(tenant, "prefect-cloud.webhook.failed")
    assert failed.resource_id == f"prefect-cloud.webhook.{made['id']}"
    assert reason in failed.payload["reason"]
    assert events(tenant) == [failed]
    return failed.payload


def tojson_template(source: str) -> str:
    """Two events, the second carrying ``source`` through ``tojson``: either both are stored or
    neither is."""
    return (
        '[{"event": "first", "resource": {"prefect.resource.id": "r.1"}}, '
        '{"event": "second", "resource": {"prefect.resource.id": "r.2"}, '
        f'"payload": {{"value": {{{{ {source} | tojson }}}}}}}}]'
    )


class TestReceiveRefusesWhatCannotBeStored:
    """Client input never makes a 500: what cannot be stored is a 4xx, the workspace sees why (a
    ``failed`` event, itself always storable) and nothing else of the request is kept."""

    @pytest.mark.parametrize(
        ("source", "data", "content_type"),
        [
            ("raw_body", b"a\x00b", "text/plain"),
            ("body.v", "v=a%00b", "application/x-www-form-urlencoded"),
        ],
    )
    def test_a_nul_rendered_with_tojson_is_400(self, tenant, dev, source, data, content_type):
        made = create(dev, tenant, template=tojson_template(source))
        answer = hook(made["slug"], data, content_type=content_type)
        payload = refused_and_seen(tenant, made, answer, 400, "NUL")
        assert "\x00" not in payload["body"]

    def test_a_nul_in_a_json_body_is_400(self, tenant, dev):
        made = create(dev, tenant, template=tojson_template("body.v"))
        answer = hook(made["slug"], '{"v": "a\\u0000b"}')
        payload = refused_and_seen(tenant, made, answer, 400, "NUL")
        assert payload["body"] == '{"v": "a\\u0000b"}'  # the escape, as text: storable

    def test_a_lone_surrogate_is_400_from_the_body_or_the_template(self, tenant, dev):
        made = create(dev, tenant, template=tojson_template("body.v"))
        refused_and_seen(tenant, made, hook(made["slug"], '{"v": "\\ud800"}'), 400, "surrogate")
        static = '{"event": "x", "resource": {"prefect.resource.id": "r"}, "payload": {"v": "\\ud800"}}'
        other = create(dev, tenant, name="static", template=static)
        answer = hook(other["slug"], "{}")
        assert answer.status_code == 400 and "surrogate" in answer.json()["detail"]
        # A Jinja string literal makes the surrogate itself, not its JSON escape.
        literal = (
            '{"event": "x", "resource": {"prefect.resource.id": "r"}, "payload": {"v": "{{ \'\\ud800\' }}"}}'
        )
        third = create(dev, tenant, name="literal", template=literal)
        answer = hook(third["slug"], "{}")
        assert answer.status_code == 400 and "surrogate" in answer.json()["detail"]
        assert len(events(tenant, "prefect-cloud.webhook.failed")) == 3
        assert not [e for e in events(tenant) if e.event != "prefect-cloud.webhook.failed"]

    def test_a_50000_deep_json_body_is_400(self, tenant, dev):
        made = create(dev, tenant)
        deep = "[" * 50_000 + "]" * 50_000
        payload = refused_and_seen(tenant, made, hook(made["slug"], deep), 400, "nest")
        assert payload["body"] == "[" * 2000

    def test_a_template_that_renders_50000_deep_json_is_400(self, tenant, dev):
        made = create(dev, tenant, template="{{ raw_body }}")
        deep = "[" * 50_000 + "]" * 50_000
        refused_and_seen(tenant, made, hook(made["slug"], deep, content_type="text/plain"), 400, "nest")

    def test_a_nul_byte_in_a_refused_request_is_still_seen(self, tenant, dev):
        # Only the slug is needed: the signature check refuses it, and its failure event is stored.
        made = create(dev, tenant, signature_scheme="shared-secret", signature_secret="s" * 32)
        answer = hook(made["slug"], b"a\x00b", content_type="text/plain", HTTP_X_WEBHOOK_SECRET="wrong")
        payload = refused_and_seen(tenant, made, answer, 401, "does not match")
        assert payload["body"] == "a\ufffdb"

    def test_a_time_out_of_range_is_400(self, tenant, dev):
        template = '{"event": "x", "occurred": "{{ body.when }}", "resource": {"prefect.resource.id": "r"}}'
        made = create(dev, tenant, template=template)
        answer = hook(made["slug"], json.dumps({"when": "0001-01-01T00:00:00+01:00"}))
        refused_and_seen(tenant, made, answer, 400, "occurred")

    def test_a_slug_that_no_webhook_can_have_is_404(self, tenant, dev):
        assert hook("ab%00cd", "{}").status_code == 404
        assert hook("a" * 65, "{}").status_code == 404


class TestReceiveAndThePlan:
    @pytest.fixture(autouse=True)
    def _limits(self, settings):
        ratelimit.reset()
        yield settings
        ratelimit.reset()

    def _allowance(self, settings, tenant) -> int:
        settings.RATE_LIMIT_SCALE = 0.0005  # a few dozen logs + events a minute
        if 60 - time.time() % 60 < 8:  # the checks need the minute not to turn meanwhile
            time.sleep(60 - time.time() % 60 + 0.1)
        return limit_of(tenant.account.plan, Bucket.LOGS_EVENTS)

    def _spend(self, tenant, amount: int) -> None:
        account = tenant.account
        assert retry_after_for(account_id=account.pk, plan=account.plan, bucket=Bucket.LOGS_EVENTS,
                               amount=amount) is None  # fmt: skip

    def test_each_event_is_charged_to_the_account_s_logs_and_events_budget(self, settings, tenant, dev):
        three = json.dumps([{"event": f"e.{i}", "resource": {"prefect.resource.id": "r"}} for i in range(3)])
        made = create(dev, tenant, template=three)
        allowance = self._allowance(settings, tenant)
        self._spend(tenant, allowance - 3)
        assert hook(made["slug"]).status_code == 204  # three events: the minute's last three
        refused = hook(made["slug"])
        assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
        assert "logs and events" in refused.json()["detail"]
        assert len(events(tenant)) == 3  # nothing of the refused request, not even a failed event

    def test_an_account_past_its_budget_stores_nothing(self, settings, tenant, dev):
        made = create(dev, tenant)
        self._spend(tenant, self._allowance(settings, tenant))
        refused = hook(made["slug"], json.dumps(ORDER))
        assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
        assert events(tenant) == [] and events(tenant, "prefect-cloud.webhook.failed") == []

    def test_after_a_downgrade_only_the_webhooks_the_plan_allows_receive(self, api_client):
        team = make_tenant(plan="team")
        client = bearer(api_client, team.service_key)
        older, newer = create(client, team, name="older"), create(client, team, name="newer")
        team.account.plan = "hobby"
        team.account.save(update_fields=["plan", "updated"])
        assert hook(older["slug"], json.dumps(ORDER)).status_code == 204
        refused = hook(newer["slug"], json.dumps(ORDER))
        assert refused.status_code == 403 and "Hobby" in refused.json()["detail"]
        (failed,) = events(team, "prefect-cloud.webhook.failed")
        assert failed.resource_id == f"prefect-cloud.webhook.{newer['id']}"
        assert [e.event for e in events(team) if e != failed] == ["shop.order.placed"]
        # Deleting the older one frees its place for the newer, as it would for a creation.
        assert client.delete(f"{team.prefix}/webhooks/{older['id']}").status_code == 204
        assert hook(newer["slug"], json.dumps(ORDER)).status_code == 204

    def test_a_contract_without_webhooks_refuses_them(self, tenant, dev):
        made = create(dev, tenant)
        tenant.account.plan_limits = {"max_webhooks": 0}
        tenant.account.save(update_fields=["plan_limits", "updated"])
        refused_and_seen(
            tenant, made, hook(made["slug"], json.dumps(ORDER)), 403, "does not include webhooks"
        )

    def test_a_restricted_account_still_receives_as_its_events_in_does(self, tenant, dev, settings):
        # Past the grace period new work is refused (a run an automation would start), not events.
        made = create(dev, tenant)
        account = tenant.account
        account.billing_status = "past_due"
        account.billing_status_since = timezone.now() - dt.timedelta(
            days=settings.BILLING_GRACE_DAYS, hours=1
        )
        account.save(update_fields=["billing_status", "billing_status_since", "updated"])
        assert hook(made["slug"], json.dumps(ORDER)).status_code == 204
