"""Deactivating a person ends their access everywhere at once: keys, console sessions, workspaces;
their history stays. The last Owner of an account cannot be deactivated."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from accounts.api_keys.models import ApiKey
from accounts.services import user_deactivate, user_reactivate
from accounts.tenancy import account_create
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from core.errors import Conflict
from tests.conftest import bearer
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_keys_sessions_and_workspace_access_end_at_once(api_client, tenant):
    browser = Client()
    browser.force_login(tenant.member)
    assert browser.get("/api/me/").status_code == 200
    assert bearer(api_client, tenant.member_key).get(f"{tenant.prefix}/health").status_code == 200

    user_deactivate(user=tenant.member, actor=SYSTEM, account=tenant.account)

    assert bearer(api_client, tenant.member_key).get(f"{tenant.prefix}/health").status_code == 401
    assert browser.get("/api/me/").status_code in (401, 403)
    assert not ApiKey.objects.filter(user=tenant.member, revoked_at__isnull=True).exists()
    assert not any(
        s.get_decoded().get("_auth_user_id") == str(tenant.member.pk) for s in Session.objects.all()
    )
    entry = AuditLogEntry.objects.filter(api_name="user.deactivated").get()
    assert entry.payload["after"] == {"active": False} and entry.payload["keys_revoked"] == 1
    # The membership and history stay; reactivation restores the person (not the keys).
    assert tenant.account.memberships.filter(user=tenant.member).exists()
    user_reactivate(user=tenant.member, actor=SYSTEM)
    assert bearer(api_client, tenant.member_key).get(f"{tenant.prefix}/health").status_code == 401


def test_the_last_owner_cannot_be_deactivated(db):
    owner = UserFactory()
    account_create(name="Solo", owner=owner, actor=SYSTEM)
    with pytest.raises(Conflict, match="last Owner"):
        user_deactivate(user=owner, actor=SYSTEM)
    owner.refresh_from_db()
    assert owner.is_active
