"""An account seen from the console: its Owner, an Admin and a plain Member (each with a browser
session on request), on the Enterprise plan unless a test says otherwise."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.permissions import AccountRole
from audit.models import AuditLogEntry
from tests.conftest import Tenant, make_tenant
from tests.factories import MembershipFactory, UserFactory


@dataclass
class Org:
    tenant: Tenant
    owner: object
    admin: object

    @property
    def account(self):
        return self.tenant.account

    @property
    def member(self):
        return self.tenant.member

    def url(self, page: str = "") -> str:
        return f"/console/accounts/{self.account.handle}/{page}"


def make_org(**account_fields) -> Org:
    tenant = make_tenant(**account_fields)
    owner, admin = UserFactory(), UserFactory()
    MembershipFactory(account=tenant.account, user=owner, role=AccountRole.OWNER)
    MembershipFactory(account=tenant.account, user=admin, role=AccountRole.ADMIN)
    return Org(tenant, owner, admin)


@pytest.fixture
def org(db) -> Org:
    return make_org()


def session(user, *, csrf: bool = False) -> Client:
    """A browser signed in as ``user``; with ``csrf`` it enforces CSRF as a real browser meets it."""
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def audited(account, api_name: str) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(account=account, api_name=api_name))


def steady_query_count(browser: Client, url: str) -> int:
    """The queries of one GET of ``url`` once memos a write dropped (the allowlist policy) are
    read again: what a list page costs, to compare with more rows (no per-row queries)."""
    browser.get(url)
    with CaptureQueriesContext(connection) as captured:
        assert browser.get(url).status_code == 200
    return len(captured)
