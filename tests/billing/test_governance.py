"""Governance stays available whatever the account's billing says: after the grace period
(restricted), once suspended, and read-only after a cancellation it did not fit the free plan for.
Password sign-in, SCIM deprovisioning (Okta's PATCH ``active: false`` and a DELETE), the audit log
(the API and the signed export) and the billing endpoint answer, while an orchestration write that
starts new work (a flow run) is refused with a 402 in each of those states."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AccountMembership, ScimUser, User
from accounts.permissions import AccountRole
from accounts.scim.services import scim_token_create
from audit.actors import SYSTEM
from billing.models import BillingStatus
from billing.selectors import billing_phase
from orchestration.models import FlowRun
from tenants.models import Account
from tests.conftest import bearer, make_tenant
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough password for the owner"
SCIM_JSON = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# The account's standing, as billing keeps it: (status, days since it began).
STATES = {
    "restricted": (BillingStatus.PAST_DUE, 8),  # grace (7 days) is over
    "suspended": (BillingStatus.PAST_DUE, 30),  # 7 + 14 days later
    "read_only": (BillingStatus.READ_ONLY, 1),
}


def _provision(scim: Client, base: str, email: str) -> str:
    response = scim.post(
        f"{base}/Users",
        {
            "schemas": [USER],
            "userName": email,
            "emails": [{"primary": True, "value": email, "type": "work"}],
            "active": True,
        },
        content_type=SCIM_JSON,
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.parametrize("state", list(STATES))
def test_governance_answers_while_new_work_is_refused(state):
    tenant = make_tenant(plan="enterprise")
    account = tenant.account
    owner = UserFactory()
    owner.set_password(PASSWORD)
    owner.save()
    MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
    _, token = scim_token_create(account=account, actor=SYSTEM, name="okta")
    scim, base = Client(HTTP_AUTHORIZATION=f"Bearer {token}"), f"/scim/v2/accounts/{account.id}"
    ada = _provision(scim, base, "ada@corp.example")
    bob = _provision(scim, base, "bob@corp.example")
    api = bearer(APIClient(), tenant.member_key)
    flow = api.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()

    status, days = STATES[state]
    # Saved as billing's services save it (the access memo of the account follows the save).
    account = Account.objects.get(pk=account.pk)
    account.billing_status = status
    account.billing_status_since = timezone.now() - dt.timedelta(days=days)
    account.save(update_fields=["billing_status", "billing_status_since", "updated"])
    assert billing_phase(account) == state

    # New work is refused ...
    refused = api.post(f"{tenant.prefix}/flow_runs/", {"flow_id": flow["id"]}, format="json")
    assert refused.status_code == 402, refused.content
    assert set(refused.json()) == {"detail"}
    assert not FlowRun.objects.for_workspace(tenant.workspace.id).exists()

    # ... governance is not. A password sign-in:
    browser = Client()
    signed_in = browser.post("/login/", {"username": owner.email, "password": PASSWORD})
    assert signed_in.status_code == 302, signed_in.content
    assert browser.get("/api/me/").status_code == 200

    # SCIM deprovisioning, both ways identity providers do it.
    deactivated = scim.patch(
        f"{base}/Users/{ada}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]},
        content_type=SCIM_JSON,
    )
    assert deactivated.status_code == 200, deactivated.content
    assert deactivated.json()["active"] is False
    assert scim.delete(f"{base}/Users/{bob}").status_code == 204
    people = AccountMembership.objects.filter(account=account, user__is_active=True)
    assert not people.filter(user__email__in=["ada@corp.example", "bob@corp.example"]).exists()
    assert not ScimUser.objects.filter(account=account, active=True).exists()
    assert not User.objects.get(email="bob@corp.example").memberships.filter(account=account).exists()

    # The audit log: read over the API, and exported (a zip of the export and its signed manifest).
    events = browser.get(f"/api/accounts/{account.id}/audit_events", {"limit": 200})
    assert events.status_code == 200, events.content
    logged = {e["api_name"] for e in events.json()["events"]}
    assert {"scim.user-deactivated", "scim.user-deleted", "billing.seats-changed"} <= logged
    export = browser.get(f"/console/accounts/{account.handle}/audit-log/export?format=jsonl")
    assert export.status_code == 200 and export["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(export.content)).namelist()
    assert any(name.endswith(".manifest.json") for name in names) and len(names) == 2

    # The billing endpoint answers, with the phase and why new work is refused.
    summary = browser.get(f"/api/accounts/{account.id}/billing")
    assert summary.status_code == 200, summary.content
    assert summary.json()["phase"] == state and summary.json()["warnings"]
    assert browser.get(f"/console/accounts/{account.handle}/billing/").status_code == 200
