"""Teams: the account's teams with their members and workspace grants; create, rename and delete a
team, add and remove its members, grant it a role in a workspace. A team its identity provider
provisions over SCIM is marked and locked (its name and members are the IdP's to change; the
services refuse, and the page offers no such controls); its workspace grants stay ours. The same
services (and audit events) as ``teams/`` and ``team_access`` of the API."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect

from accounts import rbac
from accounts.models import Team, TeamMember
from accounts.selectors import (
    account_principals,
    account_workspace_get,
    team_get,
    team_list_with_counts,
    team_member_get,
    team_member_list,
    team_workspace_grants,
    workspace_list_for,
)
from accounts.services import workspace_access_grant
from billing.entitlements import plan_for
from console.pages.base import (
    Confirmation,
    ConfirmedActionPage,
    ConsolePage,
    error_message,
    form_write,
    select_options,
)
from console.pages.choices import parse_principal, parse_uuid, parse_workspace_role, workspace_role_choices
from core.errors import AppError

_FIELD_CODES = {"name": frozenset({"invalid_name", "name_taken"})}


class TeamForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    description = forms.CharField(label="Description", max_length=2000, required=False)


def team_or_404(account, team_id) -> Team:
    team_id = parse_uuid(team_id)
    team = team_get(account=account, team_id=team_id) if team_id else None
    if team is None:
        raise Http404("Not Found")
    return team


class TeamsPage(ConsolePage):
    required_permissions = {"GET": "read:team", "POST": "create:team"}
    template_name = "console/teams.html"
    nav_url_name = "console-teams"

    def show(self, *, form=None, status: int = 200):
        return self.page(
            {
                "teams": list(team_list_with_counts(account=self.account)),
                "form": form or TeamForm(),
                "feature_on_plan": plan_for(self.account).has("teams"),
            },
            status=status,
        )

    def get(self, request):
        return self.show()

    def post(self, request):
        form = TeamForm(request.POST)
        done, team = form_write(
            form,
            lambda data: rbac.team_create(account=self.account, actor=request.user, **data),
            field_codes=_FIELD_CODES,
        )
        if done:
            messages.success(request, f"The team {team.name} was created.")
            return redirect(self.url("console-team", team.pk))
        return self.show(form=form, status=422)


class _TeamView(ConsolePage):
    template_name = "console/team.html"
    nav_url_name = "console-teams"

    def show(self, team: Team, *, form=None, errors: dict | None = None, status: int = 200):
        members = list(team_member_list(team))
        in_team = {m.user_id or m.service_account_id for m in members}
        candidates = []
        if not team.scim_managed and self.can("update:team"):
            users, bots = account_principals(account=self.account)
            candidates = [(f"user:{pk}", email) for pk, email in users if pk not in in_team]
            candidates += [
                (f"bot:{pk}", f"{name} (service account)") for pk, name in bots if pk not in in_team
            ]
        return self.page(
            {
                "team": team,
                "members": members,
                "grants": list(team_workspace_grants(team).order_by("workspace__name")),
                "form": form or TeamForm(initial={"name": team.name, "description": team.description}),
                "candidates": candidates,
                "candidate_options": select_options(candidates),
                "workspaces": workspace_list_for(self.request.user, account=self.account)
                if self.can("update:team")
                else [],
                "roles": workspace_role_choices(self.account) if self.can("update:team") else [],
                "errors": errors or {},
            },
            status=status,
        )


class TeamPage(_TeamView):
    """A team: its members and workspace grants; POST renames it."""

    required_permissions = {"GET": "read:team", "POST": "update:team"}

    def get(self, request, team_id):
        return self.show(team_or_404(self.account, team_id))

    def post(self, request, team_id):
        team = team_or_404(self.account, team_id)
        form = TeamForm(request.POST)
        done, saved = form_write(
            form,
            lambda data: rbac.team_update(team=team, actor=request.user, **data),
            field_codes=_FIELD_CODES,
        )
        if done:
            messages.success(request, f"The team {saved.name} was saved.")
            return redirect(self.url("console-team", saved.pk))
        return self.show(team, form=form, status=422)


class TeamMemberAddPage(_TeamView):
    required_permissions = {"POST": "update:team"}

    def post(self, request, team_id):
        team = team_or_404(self.account, team_id)
        principal = parse_principal(self.account, request.POST.get("principal"))
        if principal is None:
            return self.show(team, errors={"member": "Choose a member or service account."}, status=422)
        try:
            rbac.team_member_add(team=team, principal=principal, actor=request.user)
        except AppError as error:
            return self.show(team, errors={"member": error_message(error)}, status=422)
        messages.success(request, f"{principal} was added to {team.name}.")
        return redirect(self.url("console-team", team.pk))


class TeamGrantPage(_TeamView):
    """Grant the team a role in a workspace (replacing the role it held there)."""

    required_permissions = {"POST": "update:team"}

    def post(self, request, team_id):
        team = team_or_404(self.account, team_id)
        workspace_id = parse_uuid(request.POST.get("workspace"))
        workspace = (
            account_workspace_get(account=self.account, workspace_id=workspace_id) if workspace_id else None
        )
        role = parse_workspace_role(self.account, request.POST.get("role"))
        if workspace is None or role is None:
            return self.show(team, errors={"grant": "Choose a workspace and a role."}, status=422)
        try:
            workspace_access_grant(workspace=workspace, principal=team, role=role, actor=request.user)
        except AppError as error:
            return self.show(team, errors={"grant": error_message(error)}, status=422)
        messages.success(request, f"{team.name} is {role.name} in {workspace.name}.")
        return redirect(self.url("console-team", team.pk))


class TeamMemberRemovePage(ConfirmedActionPage):
    required_permissions = {"GET": "update:team", "POST": "update:team"}
    nav_url_name = "console-teams"

    def enter(self, *, team_id) -> None:
        self.team = team_or_404(self.account, team_id)

    def target(self, object_id) -> TeamMember:
        member = team_member_get(team=self.team, principal_id=object_id)
        if member is None:
            raise Http404("Not Found")
        return member

    def back_url(self, target) -> str:
        return self.url("console-team", self.team.pk)

    def confirmation(self, target: TeamMember) -> Confirmation:
        return Confirmation(
            title=f"Remove {target.principal} from {self.team.name}?",
            explanation="They lose the roles the team holds in its workspaces (not their own grants).",
            action_label="Remove from team",
            done=f"{target.principal} was removed from {self.team.name}.",
        )

    def act(self, target: TeamMember) -> None:
        rbac.team_member_remove(team=self.team, principal=target.principal, actor=self.request.user)


class TeamDeletePage(ConfirmedActionPage):
    required_permissions = {"GET": "delete:team", "POST": "delete:team"}
    nav_url_name = back_url_name = "console-teams"

    def target(self, object_id) -> Team:
        return team_or_404(self.account, object_id)

    def confirmation(self, target: Team) -> Confirmation:
        return Confirmation(
            title=f"Delete the team {target.name}?",
            explanation="Its members lose the roles the team holds in its workspaces.",
            action_label="Delete team",
            done=f"The team {target.name} was deleted.",
        )

    def act(self, target: Team) -> None:
        rbac.team_delete(team=target, actor=self.request.user)
