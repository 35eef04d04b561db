"""Connect the prefect client: the exact commands for a workspace the person can open, with a key
made there on request (expiring, shown once), and nothing about workspaces they cannot open."""

from __future__ import annotations

import html
import re

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from access.gate import authenticate_key
from accounts.api_keys.models import ApiKey
from audit.models import AuditLogEntry
from tests.conftest import bearer, make_tenant
from tests.console.conftest import session

pytestmark = pytest.mark.django_db

URL = "/console/me/connect/"


def _commands(response) -> str:
    return html.unescape(
        " ".join(re.findall(r'<code id="cmd-[a-z]+">(.*?)</code>', response.content.decode(), re.S))
    )


def test_the_commands_name_the_workspace_and_no_key_is_made_until_asked(org):
    response = session(org.member).get(URL)
    assert response.status_code == 200
    commands = _commands(response)
    prefix = f"{settings.PUBLIC_URL}/api/accounts/{org.account.id}/workspaces/{org.tenant.workspace.id}"
    assert f"PREFECT_API_URL={prefix}" in commands
    assert f"PREFECT_CLOUD_API_URL={settings.PUBLIC_URL}/api" in commands
    assert "prefect config set PREFECT_CLOUD_API_URL=" in commands  # what cloud login does not save
    assert f"--workspace {org.account.handle}/{org.tenant.workspace.handle}" in commands
    assert "'<your pnu_ key>'" in commands
    assert not ApiKey.objects.filter(user=org.member).exclude(name="test").exists()


def test_a_key_made_here_expires_is_in_the_commands_and_works_against_the_workspace(org):
    response = session(org.member).post(
        URL, {"workspace": str(org.tenant.workspace.id), "name": "laptop", "expires_in_days": "30"}
    )
    assert response.status_code == 201
    plaintext = re.search(r'<code id="new-key">(pnu_[^<]+)</code>', response.content.decode()).group(1)
    assert f"PREFECT_API_KEY={plaintext}" in _commands(response)
    key = authenticate_key(plaintext, ip=None)
    assert key.user_id == org.member.pk and key.expires_at is not None and key.scopes is None
    assert AuditLogEntry.objects.filter(api_name="api-key.created", target_id=str(key.pk)).exists()
    api_url = re.search(r"PREFECT_API_URL=(\S+)", _commands(response)).group(1)
    path = api_url.removeprefix(settings.PUBLIC_URL) + "/flows/filter"
    assert bearer(APIClient(), plaintext).post(path, {}, format="json").status_code == 200


def test_a_workspace_the_person_cannot_open_is_404_and_gets_no_key(org):
    other = make_tenant()
    browser = session(org.member)
    for response in (
        browser.get(URL, {"workspace": str(other.workspace.id)}),
        browser.post(URL, {"workspace": str(other.workspace.id), "name": "x", "expires_in_days": "30"}),
    ):
        assert response.status_code == 404
        assert str(other.workspace.id) not in response.content.decode()
    assert not ApiKey.objects.filter(user=org.member, name="x").exists()


def test_a_bad_expiry_is_refused_inline_and_anonymous_visitors_sign_in_first(org, client):
    response = session(org.member).post(
        URL, {"workspace": str(org.tenant.workspace.id), "name": "laptop", "expires_in_days": "0"}
    )
    assert response.status_code == 422 and "greater than or equal to 1" in response.content.decode()
    assert not ApiKey.objects.filter(user=org.member, name="laptop").exists()
    assert client.get(URL).status_code == 302


def test_the_form_needs_its_csrf_token_and_makes_no_key_without_it(org):
    from tests.console.conftest import session as signed_in

    browser = signed_in(org.member, csrf=True)
    response = browser.post(
        URL, {"workspace": str(org.tenant.workspace.id), "name": "forged", "expires_in_days": "30"}
    )
    assert response.status_code == 403 and b"CSRF" in response.content
    assert not ApiKey.objects.filter(user=org.member, name="forged").exists()
    # With the page's own token it goes through.
    page = browser.get(URL).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = browser.post(
        URL,
        {
            "csrfmiddlewaretoken": token,
            "workspace": str(org.tenant.workspace.id),
            "name": "asked",
            "expires_in_days": "30",
        },
    )
    assert response.status_code == 201 and ApiKey.objects.filter(user=org.member, name="asked").exists()


def test_no_per_row_queries_in_the_workspace_list(org):
    from accounts import rbac
    from accounts.permissions import AccountRole
    from accounts.services import workspace_access_grant
    from audit.actors import SYSTEM
    from tests.console.conftest import steady_query_count
    from tests.factories import MembershipFactory, WorkspaceFactory

    browser = session(org.member)
    few = steady_query_count(browser, URL)
    # More workspaces: granted directly, through a team, by a default role, and in a second account.
    team = rbac.team_create(account=org.account, name="data", actor=SYSTEM)
    rbac.team_members_add(team=team, principals=[org.member], actor=SYSTEM)
    for n in range(4):
        workspace = WorkspaceFactory(account=org.account, name=f"direct-{n}")
        workspace_access_grant(workspace=workspace, principal=org.member, role="viewer", actor=SYSTEM)
        workspace = WorkspaceFactory(account=org.account, name=f"team-{n}")
        workspace_access_grant(workspace=workspace, principal=team, role="runner", actor=SYSTEM)
        workspace = WorkspaceFactory(account=org.account, name=f"default-{n}")
        rbac.workspace_default_role_set(
            workspace=workspace, role=rbac.ResolvedRole(builtin="viewer"), actor=SYSTEM
        )
    second = make_tenant()
    MembershipFactory(account=second.account, user=org.member, role=AccountRole.ADMIN)
    WorkspaceFactory.create_batch(3, account=second.account)
    page = browser.get(URL).content.decode()
    assert page.count('<option value="') >= 17
    assert steady_query_count(browser, URL) == few
