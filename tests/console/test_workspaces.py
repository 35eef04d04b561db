from __future__ import annotations

import pytest

from accounts import rbac
from accounts.models import WorkspaceDefaultRole, WorkspaceRoleGrant
from accounts.permissions import AccountRole, WorkspaceRole, builtin_workspace_role_id
from accounts.services import membership_add, workspace_access_grant
from audit.actors import SYSTEM
from tenants.models import Workspace
from tests.console.conftest import audited, make_org, session, steady_query_count
from tests.factories import ServiceAccountFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

RUNNER = str(builtin_workspace_role_id(WorkspaceRole.RUNNER))


class TestWorkspacesList:
    def test_admin_sees_every_workspace_with_a_link_into_its_prefect_ui(self, org):
        hidden = WorkspaceFactory(account=org.account, name="Nobody granted")
        html = session(org.admin).get(org.url("workspaces/")).content.decode()
        workspace = org.tenant.workspace
        assert workspace.name in html and hidden.name in html
        assert f'href="/account/{org.account.pk}/workspace/{workspace.pk}/"' in html
        assert "Create workspace" in html

    def test_a_member_sees_only_what_they_reach_and_no_controls(self, org):
        hidden = WorkspaceFactory(account=org.account, name="Nobody granted")
        defaulted = WorkspaceFactory(account=org.account, name="Everyone views")
        rbac.workspace_default_role_set(
            workspace=defaulted, role=rbac.ResolvedRole(builtin="viewer"), actor=SYSTEM
        )
        browser = session(org.member)
        html = browser.get(org.url("workspaces/")).content.decode()
        assert org.tenant.workspace.name in html and defaulted.name in html and hidden.name not in html
        assert "Create workspace" not in html
        assert browser.get(org.url(f"workspaces/{hidden.pk}/")).status_code == 404
        page = browser.get(org.url(f"workspaces/{org.tenant.workspace.pk}/")).content.decode()
        assert "Save workspace" not in page and "Grant access" not in page and "Revoke" not in page
        response = browser.post(org.url("workspaces/"), {"name": "mine"})
        assert response.status_code == 403 and not Workspace.objects.filter(name="mine").exists()
        response = browser.post(org.url(f"workspaces/{org.tenant.workspace.pk}/"), {"name": "renamed"})
        assert response.status_code == 403

    def test_create_and_the_plans_limit_shown_inline(self, db):
        org = make_org(plan="team")  # one workspace, already there
        response = session(org.admin).post(org.url("workspaces/"), {"name": "second"})
        assert response.status_code == 422
        assert "The Team plan allows 1 workspaces; this account has 1." in response.content.decode()
        assert not Workspace.objects.filter(name="second").exists()
        org = make_org()
        response = session(org.admin).post(org.url("workspaces/"), {"name": "second", "description": "more"})
        created = Workspace.objects.get(account=org.account, name="second")
        assert response.status_code == 302 and response["Location"] == org.url(f"workspaces/{created.pk}/")
        assert len(audited(org.account, "workspace.created")) == 1

    def test_no_per_row_queries(self, org):
        browser = session(org.member)
        few = steady_query_count(browser, org.url("workspaces/"))
        for n in range(10):
            workspace = WorkspaceFactory(account=org.account, name=f"w{n}")
            workspace_access_grant(workspace=workspace, principal=org.member, role="viewer", actor=SYSTEM)
            rbac.workspace_default_role_set(
                workspace=workspace, role=rbac.ResolvedRole(builtin="runner"), actor=SYSTEM
            )
        assert steady_query_count(browser, org.url("workspaces/")) == few
        assert steady_query_count(session(org.admin), org.url("workspaces/")) == few


class TestWorkspacePage:
    def test_who_has_access_through_what(self, org):
        workspace = org.tenant.workspace
        rbac.workspace_default_role_set(
            workspace=workspace, role=rbac.ResolvedRole(builtin="viewer"), actor=SYSTEM
        )
        html = session(org.admin).get(org.url(f"workspaces/{workspace.pk}/")).content.decode()
        assert org.owner.email in html and "account role Owner" in html
        assert org.member.email in html and "direct grant" in html and "Developer" in html
        assert f"Every member of {org.account.name}" in html and "default role" in html

    def test_no_per_row_queries(self, org):
        workspace = org.tenant.workspace
        browser = session(org.admin)
        few = steady_query_count(browser, org.url(f"workspaces/{workspace.pk}/"))
        before = browser.get(org.url(f"workspaces/{workspace.pk}/")).content.decode()
        for n in range(6):
            bot = ServiceAccountFactory(account=org.account)
            workspace_access_grant(workspace=workspace, principal=bot, role="runner", actor=SYSTEM)
            team = rbac.team_create(account=org.account, name=f"t-{bot.pk}", actor=SYSTEM)
            workspace_access_grant(workspace=workspace, principal=team, role="viewer", actor=SYSTEM)
            # More people in the picker: granted directly, or Admins (listed as acting Owners).
            person = UserFactory()
            role = AccountRole.ADMIN if n % 2 else AccountRole.MEMBER
            membership_add(account=org.account, user=person, role=role, actor=SYSTEM)
            if role == AccountRole.MEMBER:
                workspace_access_grant(workspace=workspace, principal=person, role="developer", actor=SYSTEM)
        rbac.custom_role_create(account=org.account, name="Deployer", scopes=["see_flows"], actor=SYSTEM)
        assert steady_query_count(browser, org.url(f"workspaces/{workspace.pk}/")) == few
        html = browser.get(org.url(f"workspaces/{workspace.pk}/")).content.decode()
        assert html.count("account role Admin") == before.count("account role Admin") + 3
        assert html.count("direct grant") == before.count("direct grant") + 9

    def test_rename_and_default_role_with_the_apis_events(self, org):
        workspace = org.tenant.workspace
        browser = session(org.admin)
        response = browser.post(
            org.url(f"workspaces/{workspace.pk}/"), {"name": "Production", "default_role": RUNNER}
        )
        assert response.status_code == 302
        workspace.refresh_from_db()
        assert workspace.name == "Production"
        assert WorkspaceDefaultRole.objects.get(workspace=workspace).role == "runner"
        assert len(audited(org.account, "workspace.updated")) == 1
        assert len(audited(org.account, "workspace.default-role-changed")) == 1
        browser.post(org.url(f"workspaces/{workspace.pk}/"), {"name": "Production", "default_role": "none"})
        assert not WorkspaceDefaultRole.objects.filter(workspace=workspace).exists()

    def test_a_taken_name_and_an_unknown_role_are_shown_inline(self, org):
        other = WorkspaceFactory(account=org.account, name="Taken")
        url = org.url(f"workspaces/{org.tenant.workspace.pk}/")
        response = session(org.admin).post(url, {"name": other.name, "default_role": "none"})
        assert response.status_code == 422 and "already exists in this account" in response.content.decode()
        response = session(org.admin).post(url, {"name": "x", "default_role": "emperor"})
        assert (
            response.status_code == 422 and "Choose one of the workspace roles" in response.content.decode()
        )

    def test_grant_and_revoke_access(self, org):
        workspace = org.tenant.workspace
        bot = ServiceAccountFactory(account=org.account)
        browser = session(org.admin)
        response = browser.post(
            org.url(f"workspaces/{workspace.pk}/access"), {"principal": f"bot:{bot.pk}", "role": RUNNER}
        )
        assert response.status_code == 302
        grant = WorkspaceRoleGrant.objects.for_workspace(workspace.pk).get(service_account=bot)
        revoke = org.url(f"workspaces/{workspace.pk}/access/{grant.pk}/revoke")
        assert "Revoke the access of" in browser.get(revoke).content.decode()
        assert browser.post(revoke).status_code == 302
        assert not WorkspaceRoleGrant.objects.for_workspace(workspace.pk).filter(service_account=bot).exists()
        assert len(audited(org.account, "workspace-access.granted")) == 1
        assert len(audited(org.account, "workspace-access.revoked")) == 1

    def test_another_accounts_workspace_and_principal_are_404_or_refused(self, org):
        other = make_org()
        browser = session(org.admin)
        assert browser.get(org.url(f"workspaces/{other.tenant.workspace.pk}/")).status_code == 404
        assert (
            browser.post(org.url(f"workspaces/{other.tenant.workspace.pk}/"), {"name": "x"}).status_code
            == 404
        )
        response = browser.post(
            org.url(f"workspaces/{org.tenant.workspace.pk}/access"),
            {"principal": f"user:{other.member.pk}", "role": RUNNER},
        )
        assert response.status_code == 422
        assert (
            not WorkspaceRoleGrant.objects.for_workspace(org.tenant.workspace.pk)
            .filter(user=other.member)
            .exists()
        )


def switcher(html: str) -> str:
    start = html.index('id="workspace-switcher"')
    return html[start : html.index("</details>", start)]


class TestWorkspaceSwitcher:
    """The base layout's workspace switcher: the workspaces the person can open in this account,
    each linking to its console page and its Prefect UI."""

    def test_a_member_sees_only_the_workspaces_they_reach(self, org):
        hidden = WorkspaceFactory(account=org.account, name="Nobody granted")
        defaulted = WorkspaceFactory(account=org.account, name="Everyone views")
        rbac.workspace_default_role_set(
            workspace=defaulted, role=rbac.ResolvedRole(builtin="viewer"), actor=SYSTEM
        )
        through_team = WorkspaceFactory(account=org.account, name="Team space")
        team = rbac.team_create(account=org.account, name="data", actor=SYSTEM)
        rbac.team_members_add(team=team, principals=[org.member], actor=SYSTEM)
        workspace_access_grant(workspace=through_team, principal=team, role="viewer", actor=SYSTEM)
        other_account = make_org().tenant.workspace

        shown = switcher(session(org.member).get(org.url("members/")).content.decode())
        for reached in (org.tenant.workspace, defaulted, through_team):
            assert f'href="{org.url(f"workspaces/{reached.pk}/")}"' in shown
            assert f'href="/account/{org.account.pk}/workspace/{reached.pk}/"' in shown
        assert hidden.name not in shown and str(hidden.pk) not in shown
        assert str(other_account.pk) not in shown
        # Every link leads somewhere the member may go.
        browser = session(org.member)
        for reached in (org.tenant.workspace, defaulted, through_team):
            assert browser.get(org.url(f"workspaces/{reached.pk}/")).status_code == 200

        everything = switcher(session(org.admin).get(org.url("members/")).content.decode())
        assert hidden.name in everything and through_team.name in everything

    def test_the_workspace_page_marks_its_workspace(self, org):
        other = WorkspaceFactory(account=org.account, name="Zeta")
        workspace = org.tenant.workspace
        shown = switcher(session(org.admin).get(org.url(f"workspaces/{workspace.pk}/")).content.decode())
        assert f"Workspace: <strong>{workspace.name}</strong>" in shown
        assert f'href="{org.url(f"workspaces/{workspace.pk}/")}" aria-current="true"' in shown
        assert f'href="{org.url(f"workspaces/{other.pk}/")}">' in shown

    def test_no_workspace_no_switcher_and_none_outside_an_account(self, org):
        lonely = make_org()
        lonely.tenant.workspace.delete()
        assert (
            'id="workspace-switcher"'
            not in session(lonely.admin).get(lonely.url("members/")).content.decode()
        )
        assert (
            'id="workspace-switcher"' not in session(org.admin).get("/console/me/api-keys/").content.decode()
        )

    def test_the_switcher_costs_one_query_whatever_the_workspaces(self, org, monkeypatch):
        browser = session(org.member)
        with_switcher = steady_query_count(browser, org.url("members/"))
        monkeypatch.setattr("console.pages.base.workspace_names_for", lambda *args, **kwargs: [])
        assert steady_query_count(browser, org.url("members/")) == with_switcher - 1
        monkeypatch.undo()
        for n in range(6):
            workspace = WorkspaceFactory(account=org.account, name=f"w{n}")
            workspace_access_grant(workspace=workspace, principal=org.member, role="viewer", actor=SYSTEM)
        assert switcher(browser.get(org.url("members/")).content.decode()).count("Prefect UI<span") == 7
        assert steady_query_count(browser, org.url("members/")) == with_switcher
