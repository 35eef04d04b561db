"""A read-only account (its subscription ended and it did not fit Hobby) moves to Hobby as soon as
it frees what it must, whichever door freed it: at once for seats, workspaces and deployments,
within beat's next minute for everything else."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import ServiceAccount
from accounts.tenancy import workspace_delete
from billing.tasks import recheck_read_only_accounts
from tests.conftest import bearer, make_tenant
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


def _read_only(account) -> None:
    account.billing_status = "read_only"
    account.billing_status_since = timezone.now()
    account.save(update_fields=["billing_status", "billing_status_since", "updated"])


def _standing(account) -> tuple[str, str]:
    account.refresh_from_db()
    return account.plan, account.billing_status


def test_deleting_a_workspace_or_a_deployment_rechecks_at_once(
    api_client, django_capture_on_commit_callbacks
):
    tenant = make_tenant(plan="team")
    ServiceAccount.objects.filter(account=tenant.account).delete()  # Hobby has no service accounts
    client = bearer(api_client, tenant.member_key)
    flow = client.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()
    deployments = [
        client.post(f"{tenant.prefix}/deployments/", {"name": f"d{i}", "flow_id": flow["id"]}, format="json")
        for i in range(6)
    ]
    assert all(response.status_code == 201 for response in deployments)
    spare = WorkspaceFactory(account=tenant.account)
    _read_only(tenant.account)

    with django_capture_on_commit_callbacks(execute=True):
        workspace_delete(workspace=spare, actor=tenant.member)
    assert _standing(tenant.account) == ("team", "read_only")  # still six deployments of five

    with django_capture_on_commit_callbacks(execute=True):
        deleted = client.delete(f"{tenant.prefix}/deployments/{deployments[0].json()['id']}")
    assert deleted.status_code == 204
    assert _standing(tenant.account) == ("hobby", "active")


def test_beat_rechecks_what_other_doors_freed():
    tenant = make_tenant(plan="team")
    _read_only(tenant.account)
    assert recheck_read_only_accounts.delay().get() == 0  # a service account: Hobby has none
    assert _standing(tenant.account) == ("team", "read_only")
    ServiceAccount.objects.filter(account=tenant.account).delete()
    assert recheck_read_only_accounts.delay().get() == 1
    assert _standing(tenant.account) == ("hobby", "active")
