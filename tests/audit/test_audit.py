from __future__ import annotations

import pytest
from django.db import transaction

from accounts.tenancy import workspace_create
from audit import events
from audit.actors import SYSTEM, SystemActor
from audit.models import AuditLogEntry
from audit.registry import AuditEventRegistry, AuditEventType, DuplicateAuditEvent, registry
from audit.services import audit_record
from tenants.models import Workspace
from tests.conftest import bearer


class TestRegistry:
    def test_duplicates_are_refused(self):
        local = AuditEventRegistry()
        local.register(AuditEventType(1, "A", "a.done", "{actor} did a"))
        for clash in (
            AuditEventType(1, "B", "b.done", ""),
            AuditEventType(2, "A", "c.done", ""),
            AuditEventType(3, "C", "a.done", ""),
        ):
            with pytest.raises(DuplicateAuditEvent):
                local.register(clash)

    def test_product_events_are_registered_once_with_stable_ids(self):
        names = {e.api_name: e.id for e in registry.all()}
        assert names["api-key.created"] == 50
        assert names["account.created"] == 1
        assert {
            "member.added",
            "member.removed",
            "member.role-changed",
            "service-account.created",
            "service-account.deleted",
            "api-key.revoked",
            "workspace.created",
        } <= set(names)
        assert registry.get("api-key.created") is events.API_KEY_CREATED is registry.get(50)

    def test_template_renders_and_falls_back(self):
        assert events.MEMBER_ADDED.render(actor="a", target="b", role="admin") == "a added b as admin"
        assert events.MEMBER_ADDED.render(actor="a") == "member.added"


@pytest.mark.django_db
class TestAuditRecord:
    def test_fields(self, tenant):
        entry = audit_record(
            event=events.WORKSPACE_CREATED,
            actor=tenant.member,
            workspace=tenant.workspace,
            target=tenant.workspace,
            payload={"k": "v"},
        )
        entry.refresh_from_db()
        assert entry.account_id == tenant.account.id and entry.account_ref == tenant.account.id
        assert entry.workspace_ref == tenant.workspace.id
        assert (entry.actor_kind, entry.actor_user_id, entry.actor_label) == (
            "user",
            tenant.member.id,
            tenant.member.email,
        )
        assert (entry.target_type, entry.target_id) == ("tenants.workspace", str(tenant.workspace.id))
        assert entry.payload == {"k": "v"}
        assert entry.message.startswith(tenant.member.email)

    def test_service_account_and_named_system_actors(self, tenant):
        by_robot = audit_record(
            event=events.API_KEY_CREATED, actor=tenant.service_account, account=tenant.account
        )
        assert (by_robot.actor_kind, by_robot.actor_service_account_id) == (
            "service_account",
            tenant.service_account.id,
        )
        by_scim = audit_record(event=events.MEMBER_ADDED, actor=SystemActor("SCIM"), account=tenant.account)
        assert (by_scim.actor_kind, by_scim.actor_label) == ("system", "SCIM")

    def test_record_rolls_back_with_the_change(self, tenant):
        before = AuditLogEntry.objects.count()
        with pytest.raises(RuntimeError), transaction.atomic():
            workspace_create(account=tenant.account, name="doomed", actor=SYSTEM)
            raise RuntimeError
        assert AuditLogEntry.objects.count() == before
        assert not Workspace.objects.filter(name="doomed").exists()

    def test_the_record_outlives_its_tenant_by_id(self, tenant):
        entry = audit_record(event=events.WORKSPACE_CREATED, actor=SYSTEM, workspace=tenant.workspace)
        tenant.workspace.delete()
        entry.refresh_from_db()  # unchanged: entries are never updated, not even by a deletion
        assert entry.workspace_ref == entry.workspace_id and entry.workspace_ref is not None
        from audit.services import audit_verify_chain

        assert audit_verify_chain(tenant.account.pk).ok


@pytest.mark.django_db
def test_request_facts_reach_the_record(api_client, tenant, settings):
    """A request's IP, user agent and request id are stamped on what it records."""
    from django.test import RequestFactory

    from audit.middleware import RequestContextMiddleware

    captured = {}

    def view(request):
        captured["entry"] = audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=tenant.account)
        from django.http import HttpResponse

        return HttpResponse("ok")

    request = RequestFactory().get(
        "/",
        HTTP_USER_AGENT="prefect/3.9.1 (API 0.8.4)",
        HTTP_X_REQUEST_ID="abc-123",
        REMOTE_ADDR="192.0.2.10",
    )
    response = RequestContextMiddleware(view)(request)
    entry = captured["entry"]
    assert (entry.ip, entry.user_agent, entry.request_id) == (
        "192.0.2.10",
        "prefect/3.9.1 (API 0.8.4)",
        "abc-123",
    )
    assert response["X-Request-ID"] == "abc-123"


@pytest.mark.django_db
def test_every_response_carries_a_request_id(api_client, tenant):
    response = bearer(api_client, tenant.service_key).get(f"{tenant.prefix}/health")
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_retention_purge_follows_the_plan(tenant):
    from datetime import timedelta
    from unittest import mock

    from django.utils import timezone

    from accounts.tenancy import account_create
    from audit.services import audit_purge_expired, audit_verify_chain
    from tests.factories import UserFactory

    now = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=now - timedelta(days=400)):
        account = account_create(name="Old", owner=UserFactory(), actor=SYSTEM, plan="enterprise")
        old = audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=account)
    with mock.patch("django.utils.timezone.now", return_value=now - timedelta(days=300)):
        recent = audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=account)
    assert audit_purge_expired() >= 1  # enterprise keeps 365 days
    assert not AuditLogEntry.objects.filter(pk=old.pk).exists()
    assert AuditLogEntry.objects.filter(pk=recent.pk).exists()
    # The chain still verifies, from the checkpoint the purge left.
    report = audit_verify_chain(account.pk)
    assert report.ok and report.first_sequence == recent.sequence, report
