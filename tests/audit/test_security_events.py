"""Sign-ins, sign-outs, failed sign-ins, and a key used from a new address are audit events; every
event made through a key names the key and the auth method."""

from __future__ import annotations

import pytest

from audit.models import AuditLogEntry
from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def _names(account):
    return list(
        AuditLogEntry.objects.filter(account_ref=account.pk)
        .order_by("sequence")
        .values_list("api_name", flat=True)
    )


def test_sign_in_out_and_a_failed_attempt(client, tenant):
    tenant.member.set_password("a long enough password")
    tenant.member.save()
    assert client.post("/login/", {"username": tenant.member.email, "password": "wrong"}).status_code == 200
    assert (
        client.post(
            "/login/", {"username": tenant.member.email, "password": "a long enough password"}
        ).status_code
        == 302
    )
    client.post("/logout/")
    names = _names(tenant.account)
    assert names[-3:] == ["login.failed", "login.succeeded", "logout"]
    failed = AuditLogEntry.objects.get(api_name="login.failed")
    assert failed.payload["email"] == tenant.member.email and failed.target_id == str(tenant.member.pk)
    assert failed.ip == "127.0.0.1"


def test_a_key_used_from_a_new_address(api_client, tenant):
    c = bearer(api_client, tenant.service_key)
    assert c.get(f"{tenant.prefix}/health").status_code == 200
    assert c.get(f"{tenant.prefix}/health", REMOTE_ADDR="198.51.100.23").status_code == 200
    (entry,) = AuditLogEntry.objects.filter(api_name="api-key.used-from-new-ip")
    assert entry.payload["ip"] == "198.51.100.23" and entry.payload["previous_ip"] == "127.0.0.1"
    assert entry.account_ref == tenant.account.pk


def test_events_made_through_a_key_name_it(api_client, tenant):
    from accounts.api_keys.models import ApiKey
    from accounts.api_keys.services import api_key_create
    from accounts.services import membership_add
    from audit.actors import SYSTEM
    from tests.factories import UserFactory

    owner = UserFactory()
    membership_add(account=tenant.account, user=owner, role="owner", actor=SYSTEM)
    key, plaintext = api_key_create(owner=owner, name="ops", actor=SYSTEM)
    response = bearer(api_client, plaintext).post(
        f"/api/accounts/{tenant.account.id}/teams", {"name": "Ops"}, format="json"
    )
    assert response.status_code == 201, response.content
    entry = AuditLogEntry.objects.get(api_name="team.created")
    assert entry.payload["auth"] == {"method": "api_key", "api_key_id": str(key.pk)}
    assert entry.actor_user_id == owner.pk and ApiKey.objects.filter(pk=key.pk).exists()


def test_events_made_through_a_password_session_say_so(tenant):
    from django.test import Client

    from accounts.services import membership_add
    from audit.actors import SYSTEM
    from tests.factories import UserFactory

    owner = UserFactory()
    owner.set_password("a long enough password")
    owner.save()
    membership_add(account=tenant.account, user=owner, role="owner", actor=SYSTEM)
    browser = Client()
    signed_in = browser.post("/login/", {"username": owner.email, "password": "a long enough password"})
    assert signed_in.status_code == 302, signed_in.content[:300]
    made = browser.post(
        f"/api/users/{owner.id}/api_keys", {"name": "laptop"}, content_type="application/json"
    )
    assert made.status_code == 201, made.content
    entry = AuditLogEntry.objects.get(api_name="api-key.created", target_id=made.json()["id"])
    assert entry.payload["auth"] == {"method": "session", "api_key_id": None}


def test_deployments_and_work_pools_are_audited_with_before_and_after(api_client, tenant):
    c = bearer(api_client, tenant.service_key)
    assert (
        c.post(f"{tenant.prefix}/work_pools/", {"name": "p1", "type": "process"}, format="json").status_code
        == 201
    )
    assert c.patch(f"{tenant.prefix}/work_pools/p1", {"is_paused": True}, format="json").status_code == 204
    flow_id = c.post(f"{tenant.prefix}/flows/", {"name": "f"}, format="json").json()["id"]
    deployment = c.post(
        f"{tenant.prefix}/deployments/", {"name": "d", "flow_id": flow_id}, format="json"
    ).json()
    assert (
        c.patch(
            f"{tenant.prefix}/deployments/{deployment['id']}", {"description": "new"}, format="json"
        ).status_code
        == 204
    )
    assert c.delete(f"{tenant.prefix}/deployments/{deployment['id']}").status_code == 204
    assert c.delete(f"{tenant.prefix}/work_pools/p1").status_code == 204
    entries = AuditLogEntry.objects.filter(workspace_ref=tenant.workspace.pk).order_by("sequence")
    names = [e.api_name for e in entries if e.api_name.startswith(("deployment.", "work-pool."))]
    assert names == [
        "work-pool.created",
        "work-pool.updated",
        "deployment.created",
        "deployment.updated",
        "deployment.deleted",
        "work-pool.deleted",
    ]
    updated = entries.get(api_name="work-pool.updated")
    assert updated.payload["before"]["is_paused"] is False and updated.payload["after"]["is_paused"] is True
    assert updated.actor_service_account_id == tenant.service_account.pk
    changed = entries.get(api_name="deployment.updated")
    assert changed.payload["after"] == {"description": "new"}
