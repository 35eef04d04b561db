from __future__ import annotations

import re

import pytest

from accounts import rbac
from accounts.models import CustomRole, Team, TeamMember, WorkspaceRoleGrant
from accounts.permissions import AccountRole, WorkspaceRole, builtin_workspace_role_id
from accounts.roles import ResolvedRole
from accounts.services import membership_add, workspace_access_grant
from audit.actors import SCIM, SYSTEM
from tests.console.conftest import audited, make_org, session, steady_query_count
from tests.factories import ServiceAccountFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

VIEWER = str(builtin_workspace_role_id(WorkspaceRole.VIEWER))


def a_team(org, name="platform", **fields) -> Team:
    team = rbac.team_create(account=org.account, name=name, actor=SYSTEM)
    if fields:
        Team.objects.filter(pk=team.pk).update(**fields)
        team.refresh_from_db()
    return team


class TestTeams:
    def test_admin_creates_renames_and_deletes_a_team_with_the_apis_events(self, org):
        browser = session(org.admin)
        response = browser.post(org.url("teams/"), {"name": "data", "description": "the data people"})
        team = Team.objects.get(account=org.account, name="data")
        assert response.status_code == 302 and response["Location"] == org.url(f"teams/{team.pk}/")
        assert browser.post(org.url(f"teams/{team.pk}/"), {"name": "data-eng"}).status_code == 302
        team.refresh_from_db()
        assert team.name == "data-eng"
        confirm = browser.get(org.url(f"teams/{team.pk}/delete"))
        assert (
            "Delete the team data-eng?" in confirm.content.decode()
            and Team.objects.filter(pk=team.pk).exists()
        )
        assert browser.post(org.url(f"teams/{team.pk}/delete")).status_code == 302
        assert not Team.objects.filter(pk=team.pk).exists()
        for event in ("team.created", "team.updated", "team.deleted"):
            assert len(audited(org.account, event)) == 1, event

    def test_a_taken_name_is_shown_under_the_field(self, org):
        a_team(org, "data")
        response = session(org.admin).post(org.url("teams/"), {"name": "data"})
        assert (
            response.status_code == 422
            and "A team named &#x27;data&#x27; already exists." in response.content.decode()
        )

    def test_members_are_added_and_removed_and_granted_a_workspace(self, org):
        team = a_team(org)
        browser = session(org.admin)
        page = browser.get(org.url(f"teams/{team.pk}/")).content.decode()
        assert f'value="user:{org.member.pk}"' in page
        assert (
            browser.post(
                org.url(f"teams/{team.pk}/members"), {"principal": f"user:{org.member.pk}"}
            ).status_code
            == 302
        )
        assert TeamMember.objects.filter(team=team, user=org.member).exists()
        workspace = org.tenant.workspace
        response = browser.post(
            org.url(f"teams/{team.pk}/grants"), {"workspace": workspace.pk, "role": VIEWER}
        )
        assert response.status_code == 302
        assert (
            WorkspaceRoleGrant.objects.for_workspace(workspace.pk).filter(team=team, role="viewer").exists()
        )
        page = browser.get(org.url(f"teams/{team.pk}/")).content.decode()
        assert org.member.email in page and workspace.name in page and "Viewer" in page
        remove = org.url(f"teams/{team.pk}/members/{org.member.pk}/remove")
        assert f"Remove {org.member.email} from platform?" in browser.get(remove).content.decode()
        assert browser.post(remove).status_code == 302
        assert not TeamMember.objects.filter(team=team).exists()
        for event in ("team.member-added", "team.member-removed", "workspace-access.granted"):
            assert len(audited(org.account, event)) == 1, event

    def test_someone_of_another_account_cannot_be_added(self, org):
        team, other = a_team(org), make_org()
        response = session(org.admin).post(
            org.url(f"teams/{team.pk}/members"), {"principal": f"user:{other.member.pk}"}
        )
        assert (
            response.status_code == 422 and "Choose a member or service account." in response.content.decode()
        )
        assert not TeamMember.objects.exists()

    def test_an_idp_managed_team_is_marked_and_locked(self, org):
        team = a_team(org, "okta-admins", scim_managed=True)
        rbac.team_member_add(team=team, principal=org.member, actor=SCIM)
        browser = session(org.admin)
        assert "Identity provider (SCIM), locked" in browser.get(org.url("teams/")).content.decode()
        page = browser.get(org.url(f"teams/{team.pk}/")).content.decode()
        assert "Add to team" not in page and "Save team" not in page and "Delete team" not in page
        assert "Grant" in page  # its workspace grants are ours
        response = browser.post(org.url(f"teams/{team.pk}/"), {"name": "renamed"})
        assert (
            response.status_code == 422
            and "managed by the account&#x27;s identity provider" in response.content.decode()
        )
        assert browser.post(org.url(f"teams/{team.pk}/members/{org.member.pk}/remove")).status_code == 422
        assert TeamMember.objects.filter(team=team).exists()

    def test_a_member_sees_teams_without_controls_and_a_forged_post_is_403(self, org):
        team = a_team(org)
        browser = session(org.member)
        html = browser.get(org.url(f"teams/{team.pk}/")).content.decode()
        assert "platform" in html and "Add to team" not in html and "Grant" not in html
        assert "Create team" not in browser.get(org.url("teams/")).content.decode()
        assert browser.post(org.url("teams/"), {"name": "x"}).status_code == 403
        response = browser.post(org.url(f"teams/{team.pk}/members"), {"principal": f"user:{org.member.pk}"})
        assert response.status_code == 403 and not TeamMember.objects.exists()
        assert browser.post(org.url(f"teams/{team.pk}/delete")).status_code == 403

    def test_a_plan_without_teams_hides_them(self, db):
        org = make_org(plan="team")
        html = session(org.admin).get(org.url("members/")).content.decode()
        assert "/teams/" not in html
        response = session(org.admin).post(org.url("teams/"), {"name": "x"})
        assert (
            response.status_code == 422 and "Team" in response.content.decode() and not Team.objects.exists()
        )

    def test_another_accounts_team_is_404(self, org):
        theirs = a_team(make_org(), "theirs")
        browser = session(org.admin)
        assert browser.get(org.url(f"teams/{theirs.pk}/")).status_code == 404
        assert browser.post(org.url(f"teams/{theirs.pk}/delete")).status_code == 404
        assert Team.objects.filter(pk=theirs.pk).exists()

    def test_no_per_row_queries(self, org):
        browser = session(org.admin)
        a_team(org, "first")
        few = steady_query_count(browser, org.url("teams/"))
        workspace = org.tenant.workspace
        for n in range(10):
            team = a_team(org, f"team-{n}")
            rbac.team_member_add(team=team, principal=org.member, actor=SYSTEM)
            workspace_access_grant(workspace=workspace, principal=team, role="viewer", actor=SYSTEM)
        assert steady_query_count(browser, org.url("teams/")) == few

    def test_a_teams_page_makes_no_per_row_queries(self, org):
        team = a_team(org)
        browser = session(org.admin)
        few = steady_query_count(browser, org.url(f"teams/{team.pk}/"))
        for n in range(6):
            rbac.team_member_add(
                team=team, principal=ServiceAccountFactory(account=org.account), actor=SYSTEM
            )
            workspace = WorkspaceFactory(account=org.account, name=f"w{n}")
            workspace_access_grant(workspace=workspace, principal=team, role="viewer", actor=SYSTEM)
        assert steady_query_count(browser, org.url(f"teams/{team.pk}/")) == few


class TestRoles:
    def test_builtin_roles_and_the_grouped_scope_picker(self, org):
        html = session(org.admin).get(org.url("roles/")).content.decode()
        for role in WorkspaceRole:
            assert role.label in html
        assert "Create role" in html and 'value="manage_deployments"' in html
        assert "Deployments" in html and "Work pools" in html  # the picker's areas

    def test_admin_creates_edits_and_deletes_a_custom_role(self, org):
        browser = session(org.admin)
        response = browser.post(
            org.url("roles/"),
            {"name": "Deployer", "inherited_role": "viewer", "scopes": ["run_deployments", "see_workers"]},
        )
        assert response.status_code == 302
        role = CustomRole.objects.get(account=org.account)
        assert role.inherited_role == "viewer" and role.scopes == ["run_deployments", "see_workers"]
        edit = browser.get(org.url(f"roles/{role.pk}/")).content.decode()
        assert re.search(r'value="run_deployments"[^>]*checked', edit)
        assert not re.search(r'value="manage_blocks"[^>]*checked', edit)
        assert (
            browser.post(
                org.url(f"roles/{role.pk}/"), {"name": "Deployer", "scopes": ["manage_deployments"]}
            ).status_code
            == 302
        )
        role.refresh_from_db()
        assert role.scopes == ["manage_deployments"] and role.inherited_role == ""
        assert browser.post(org.url(f"roles/{role.pk}/delete")).status_code == 302
        assert not CustomRole.objects.exists()
        for event in ("role.created", "role.updated", "role.deleted"):
            assert len(audited(org.account, event)) == 1, event

    def test_a_role_in_use_is_refused_inline(self, org):
        role = rbac.custom_role_create(account=org.account, name="Ops", actor=SYSTEM, scopes=["see_flows"])
        rbac.workspace_default_role_set(
            workspace=org.tenant.workspace, role=ResolvedRole(custom=role), actor=SYSTEM
        )
        response = session(org.admin).post(org.url(f"roles/{role.pk}/delete"))
        assert response.status_code == 422 and "remove those first" in response.content.decode()
        assert CustomRole.objects.filter(pk=role.pk).exists()

    def test_a_plan_without_custom_roles_offers_none(self, db):
        org = make_org(plan="team")
        html = session(org.admin).get(org.url("roles/")).content.decode()
        assert "has no custom roles" in html and "Create role" not in html
        response = session(org.admin).post(org.url("roles/"), {"name": "x", "scopes": ["see_flows"]})
        assert response.status_code == 422 and "does not include custom roles" in response.content.decode()
        assert not CustomRole.objects.exists()

    def test_a_member_reads_roles_but_cannot_create_or_delete(self, org):
        role = rbac.custom_role_create(account=org.account, name="Ops", actor=SYSTEM)
        browser = session(org.member)
        html = browser.get(org.url("roles/")).content.decode()
        assert "Ops" in html and "Create role" not in html and "/delete" not in html
        assert browser.post(org.url("roles/"), {"name": "x"}).status_code == 403
        assert browser.post(org.url(f"roles/{role.pk}/delete")).status_code == 403
        assert CustomRole.objects.filter(pk=role.pk).exists()

    def test_another_accounts_role_is_404(self, org):
        theirs = rbac.custom_role_create(account=make_org().account, name="Theirs", actor=SYSTEM)
        browser = session(org.admin)
        assert browser.get(org.url(f"roles/{theirs.pk}/")).status_code == 404
        assert browser.post(org.url(f"roles/{theirs.pk}/delete")).status_code == 404

    def test_why_can_x_do_y_names_the_grants(self, org):
        team = a_team(org)
        bot = ServiceAccountFactory(account=org.account)
        rbac.team_member_add(team=team, principal=bot, actor=SYSTEM)
        workspace = WorkspaceFactory(account=org.account)
        workspace_access_grant(workspace=workspace, principal=team, role="runner", actor=SYSTEM)
        browser = session(org.admin)
        query = f"?actor={bot.pk}&workspace={workspace.pk}&scope=run_deployments"
        html = browser.get(org.url("roles/") + query).content.decode()
        assert "<strong>can</strong>" in html and "through the team platform" in html and "Runner" in html
        html = browser.get(
            org.url("roles/") + f"?actor={bot.pk}&workspace={workspace.pk}&scope=manage_blocks"
        ).content.decode()
        assert "<strong>cannot</strong>" in html
        # A member who may not see that workspace's users learns nothing about it.
        html = session(org.member).get(org.url("roles/") + query).content.decode()
        assert "Choose a workspace whose users you may see." in html and "through the team" not in html

    def test_no_per_row_queries(self, org):
        browser = session(org.admin)
        few = steady_query_count(browser, org.url("roles/"))
        for n in range(8):
            rbac.custom_role_create(account=org.account, name=f"role-{n}", actor=SYSTEM, scopes=["see_flows"])
            ServiceAccountFactory(account=org.account)
            WorkspaceFactory(account=org.account)
        assert steady_query_count(browser, org.url("roles/")) == few


class TestCustomRolePage:
    """A custom role's page: where it is granted (and whose default role it is), granting it from
    there and the revoke links, as the workspaces' own access routes do it."""

    def _role(self, org, name: str = "Deployer"):
        return rbac.custom_role_create(account=org.account, name=name, actor=SYSTEM, scopes=["see_flows"])

    def test_lists_each_grant_and_the_workspaces_it_is_the_default_of(self, org):
        role = self._role(org)
        as_role = ResolvedRole(custom=role)
        team = a_team(org)
        bot = ServiceAccountFactory(account=org.account, name="ci-bot")
        other_ws = WorkspaceFactory(account=org.account, name="Staging")
        default_ws = WorkspaceFactory(account=org.account, name="Sandbox")
        workspace_access_grant(
            workspace=org.tenant.workspace, principal=org.member, role=as_role, actor=SYSTEM
        )
        workspace_access_grant(workspace=other_ws, principal=bot, role=as_role, actor=SYSTEM)
        workspace_access_grant(workspace=other_ws, principal=team, role=as_role, actor=SYSTEM)
        workspace_access_grant(workspace=other_ws, principal=org.admin, role="viewer", actor=SYSTEM)
        rbac.workspace_default_role_set(workspace=default_ws, role=as_role, actor=SYSTEM)
        html = session(org.admin).get(org.url(f"roles/{role.pk}/")).content.decode()
        section = html.split('id="granted-heading"')[1]
        assert org.member.email in section and "ci-bot" in section and team.name in section
        assert org.admin.email not in section.split("Grant this role")[0]  # a Viewer grant, not this role
        assert section.count('<tr id="grant-') == 3
        assert "Default role of: <a" in section and "Sandbox" in section
        grant = WorkspaceRoleGrant.objects.unscoped().get(workspace=other_ws, service_account=bot)
        assert org.url(f"workspaces/{other_ws.pk}/access/{grant.pk}/revoke") in section
        assert "Grant Deployer" in section

    def test_admin_grants_the_role_from_its_page_with_the_apis_event(self, org):
        role = self._role(org)
        bot = ServiceAccountFactory(account=org.account)
        response = session(org.admin).post(
            org.url(f"roles/{role.pk}/grants"),
            {"workspace": str(org.tenant.workspace.pk), "principal": f"bot:{bot.pk}"},
        )
        assert response.status_code == 302 and response["Location"] == org.url(f"roles/{role.pk}/")
        grant = WorkspaceRoleGrant.objects.unscoped().get(workspace=org.tenant.workspace, service_account=bot)
        assert grant.custom_role_id == role.pk
        (event,) = [e for e in audited(org.account, "workspace-access.granted") if e.target_id == str(bot.pk)]
        assert event.actor_user_id == org.admin.pk

    def test_a_missing_choice_is_refused_inline(self, org):
        role = self._role(org)
        response = session(org.admin).post(org.url(f"roles/{role.pk}/grants"), {"principal": "user:nobody"})
        assert response.status_code == 422
        assert "Choose a workspace and who to grant the role to." in response.content.decode()

    def test_the_services_refusal_is_shown_inline(self, org):
        role = self._role(org)
        stranger = make_org()
        response = session(org.admin).post(
            org.url(f"roles/{role.pk}/grants"),
            {"workspace": str(org.tenant.workspace.pk), "principal": f"user:{stranger.member.pk}"},
        )
        # Someone of another account is no choice here: the form says so and nothing is granted.
        assert response.status_code == 422
        assert not WorkspaceRoleGrant.objects.unscoped().filter(custom_role=role).exists()

    def test_another_accounts_workspace_is_404(self, org):
        role = self._role(org)
        stranger = make_org()
        response = session(org.admin).post(
            org.url(f"roles/{role.pk}/grants"),
            {"workspace": str(stranger.tenant.workspace.pk), "principal": f"user:{org.member.pk}"},
        )
        assert response.status_code == 404
        assert not WorkspaceRoleGrant.objects.unscoped().filter(custom_role=role).exists()

    def test_a_member_sees_only_grants_where_they_see_the_users_and_no_controls(self, org):
        """A plain member of the account sees a grant only in a workspace whose users they may see
        (``see_workspace_users``, as the access explainer), and no control."""
        role = self._role(org)
        as_role = ResolvedRole(custom=role)
        hidden = WorkspaceFactory(account=org.account, name="Hidden")
        bot = ServiceAccountFactory(account=org.account, name="secret-bot")
        workspace_access_grant(workspace=hidden, principal=bot, role=as_role, actor=SYSTEM)
        visible_bot = ServiceAccountFactory(account=org.account, name="seen-bot")
        workspace_access_grant(
            workspace=org.tenant.workspace, principal=visible_bot, role=as_role, actor=SYSTEM
        )
        # Owner of the tenant's workspace (whose users they may see), nothing in Hidden.
        workspace_access_grant(
            workspace=org.tenant.workspace, principal=org.member, role="owner", actor=SYSTEM
        )
        browser = session(org.member)
        html = browser.get(org.url(f"roles/{role.pk}/")).content.decode()
        assert "seen-bot" in html and "secret-bot" not in html and "Hidden" not in html
        assert "1 grant in workspaces whose users you may not see" in html
        assert "Grant Deployer" not in html and "Revoke" not in html and "Save role" not in html
        forged = browser.post(
            org.url(f"roles/{role.pk}/grants"),
            {"workspace": str(hidden.pk), "principal": f"user:{org.member.pk}"},
        )
        assert forged.status_code == 403
        assert not WorkspaceRoleGrant.objects.unscoped().filter(workspace=hidden, user=org.member).exists()

    def test_no_per_row_queries(self, org):
        role = self._role(org)
        browser = session(org.admin)
        few = steady_query_count(browser, org.url(f"roles/{role.pk}/"))
        for n in range(6):
            workspace = WorkspaceFactory(account=org.account)
            bot = ServiceAccountFactory(account=org.account)
            team = a_team(org, name=f"team-{n}")
            person = UserFactory()
            membership_add(account=org.account, user=person, role=AccountRole.MEMBER, actor=SYSTEM)
            for principal in (bot, team, person):
                workspace_access_grant(
                    workspace=workspace, principal=principal, role=ResolvedRole(custom=role), actor=SYSTEM
                )
            if n % 2:
                rbac.workspace_default_role_set(
                    workspace=workspace, role=ResolvedRole(custom=role), actor=SYSTEM
                )
        assert steady_query_count(browser, org.url(f"roles/{role.pk}/")) == few
        html = browser.get(org.url(f"roles/{role.pk}/")).content.decode()
        assert html.count("Revoke<span") == 18 and html.count("(team)</option>") == 6
