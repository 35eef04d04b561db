"""Roles: the built-in workspace roles with their scopes, the account's custom roles (on plans that
have them) with a scope picker grouped by area, and "why can X do Y": whether a member or service
account holds a scope in a workspace and through which grants (the selector behind the API's
``access/explain``). A custom role's page edits it and shows where it is granted (each grant's
workspace and person, service account or team, and the workspaces whose default role it is), only
in the workspaces whose users the person may see; those who administrate workspaces grant it to
someone in a workspace there and revoke a grant (after asking, on the workspace's revoke page).
The same services (and audit events) as ``workspace_roles/`` and the workspaces' ``*_access``
routes of the API."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect

from accounts import rbac
from accounts.models import CustomRole, User
from accounts.permissions import (
    SCOPES_BY_NAME,
    WORKSPACE_ROLE_DESCRIPTIONS,
    WORKSPACE_ROLE_SCOPES,
    WORKSPACE_SCOPES,
    AccountRole,
    WorkspaceRole,
)
from accounts.roles import ResolvedRole, custom_role_scopes
from accounts.selectors import (
    account_actor_get,
    account_principals,
    custom_role_default_for,
    custom_role_get,
    custom_role_grants,
    custom_role_list,
    workspace_access,
    workspace_access_sources,
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
from console.pages.choices import parse_principal, parse_uuid, principal_choices
from console.pages.workspaces import workspace_or_404
from core.errors import AppError

# Scopes whose noun is a part of a larger area are shown in that area.
_AREA_OF_NOUN = {
    "tasks": "flows",
    "saved_search": "flows",
    "secret_blocks": "blocks",
    "event_publications": "events",
    "event_subscriptions": "events",
    "acls": "workspace_settings",
    "workspace_service_accounts": "workspace_users",
    "workspace_teams": "workspace_users",
}


_FIELD_CODES = {"name": frozenset({"invalid_name", "name_taken"})}


def scope_area(name: str) -> str:
    noun = name.split("_", 1)[1]
    return _AREA_OF_NOUN.get(noun, noun)


def grouped_scopes() -> list[tuple[str, list[tuple[str, str]]]]:
    """The scope vocabulary as ``(area title, [(scope, title)])``, in the table's order."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for scope in WORKSPACE_SCOPES:
        groups.setdefault(scope_area(scope.name), []).append((scope.name, scope.title))
    return [(area.replace("_", " ").capitalize(), scopes) for area, scopes in groups.items()]


class CustomRoleForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100)
    description = forms.CharField(label="Description", max_length=2000, required=False)
    inherited_role = forms.ChoiceField(
        label="Inherits the scopes of",
        choices=[("", "No built-in role"), *WorkspaceRole.choices],
        required=False,
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes", choices=grouped_scopes, required=False, widget=forms.CheckboxSelectMultiple
    )


def custom_role_or_404(account, role_id) -> CustomRole:
    role_id = parse_uuid(role_id)
    role = custom_role_get(account=account, role_id=role_id) if role_id else None
    if role is None:
        raise Http404("Not Found")
    return role


def explain(request, account) -> dict | None:
    """ "Why can X do Y": the answer to ``?actor=&workspace=&scope=``, or None when not asked.
    The workspace must be one the asker may see the users of (as the API's ``see_workspace_users``)."""
    params = request.GET
    if not params.get("actor"):
        return None
    actor_id, scope = parse_uuid(params.get("actor")), params.get("scope") or None
    actor = account_actor_get(account=account, actor_id=actor_id) if actor_id else None
    if actor is None:
        return {"error": "Choose a member or service account of this account."}
    if scope is not None and scope not in SCOPES_BY_NAME:
        return {"error": f"Unknown workspace scope: {scope}."}
    try:
        workspace = workspace_or_404(account, params.get("workspace"))
    except Http404:
        return {"error": "Choose a workspace."}
    mine = workspace_access(request.user, workspace)
    if mine is None or not mine.has("see_workspace_users"):
        return {"error": "Choose a workspace whose users you may see."}
    account_role, sources = workspace_access_sources(actor, workspace)
    scopes = frozenset().union(*(s.scopes for s in sources)) if sources else frozenset()
    return {
        "actor": actor,
        "actor_kind": "person" if isinstance(actor, User) else "service account",
        "workspace": workspace,
        "scope": SCOPES_BY_NAME[scope] if scope else None,
        "account_role": AccountRole(account_role).label if account_role else None,
        "allowed": (scope in scopes) if scope else bool(sources),
        "sources": [{"source": s, "grants": scope is None or scope in s.scopes} for s in sources],
    }


class _RolesView(ConsolePage):
    template_name = "console/roles.html"
    nav_url_name = "console-roles"

    def show(self, *, form=None, status: int = 200):
        custom = list(custom_role_list(account=self.account).order_by("name"))
        users, bots = account_principals(account=self.account)
        return self.page(
            {
                "builtin": [
                    {
                        "role": role,
                        "description": WORKSPACE_ROLE_DESCRIPTIONS[role],
                        "scopes": sorted(WORKSPACE_ROLE_SCOPES[role]),
                    }
                    for role in WorkspaceRole
                ],
                "custom": [{"role": r, "scopes": sorted(custom_role_scopes(r))} for r in custom],
                "form": form or CustomRoleForm(),
                "feature_on_plan": plan_for(self.account).has("custom_roles"),
                "actor_options": select_options(
                    [*users, *((pk, f"{name} (service account)") for pk, name in bots)],
                    selected=self.request.GET.get("actor"),
                ),
                "workspaces": workspace_list_for(self.request.user, account=self.account),
                "all_scopes": WORKSPACE_SCOPES,
                "explained": explain(self.request, self.account),
                "asked": self.request.GET,
            },
            status=status,
        )


class RolesPage(_RolesView):
    required_permissions = {"GET": "read:workspace_role", "POST": "create:workspace_role"}

    def get(self, request):
        return self.show()

    def post(self, request):
        form = CustomRoleForm(request.POST)
        done, role = form_write(
            form,
            lambda data: rbac.custom_role_create(account=self.account, actor=request.user, **data),
            field_codes=_FIELD_CODES,
        )
        if done:
            messages.success(request, f"The role {role.name} was created.")
            return redirect(self.url("console-roles"))
        return self.show(form=form, status=422)


class _RoleView(ConsolePage):
    template_name = "console/role.html"
    nav_url_name = "console-roles"

    def seen_workspaces(self, workspaces) -> set:
        """The ids of ``workspaces`` whose users the person may see: all of them for those who
        administrate workspaces, else those where they hold ``see_workspace_users``."""
        if self.can("administrate:workspace"):
            return {w.pk for w in workspaces}
        seen = set()
        for workspace in workspaces:
            mine = workspace_access(self.request.user, workspace)
            if mine is not None and mine.has("see_workspace_users"):
                seen.add(workspace.pk)
        return seen

    def show(self, role: CustomRole, *, form=None, grant_error: str | None = None, status: int = 200):
        initial = {
            "name": role.name,
            "description": role.description,
            "inherited_role": role.inherited_role,
            "scopes": list(role.scopes or ()),
        }
        grants = list(custom_role_grants(role=role))
        defaults = custom_role_default_for(role=role)
        involved = {w.pk: w for w in [*(g.workspace for g in grants), *defaults]}
        seen = self.seen_workspaces(involved.values())
        granting = self.can("administrate:workspace")
        principals, workspaces = [], []
        if granting:
            principals = principal_choices(self.account, teams=True)
            workspaces = [(w.pk, w.name) for w in workspace_list_for(self.request.user, account=self.account)]
        posted = self.request.POST if self.request.method == "POST" else {}
        return self.page(
            {
                "role": role,
                "form": form or CustomRoleForm(initial=initial),
                "scopes": sorted(custom_role_scopes(role)),
                "grants": [
                    {
                        "grant": g,
                        "principal": g.user or g.service_account or g.team,
                        "kind": "person" if g.user else ("service account" if g.service_account else "team"),
                    }
                    for g in grants
                    if g.workspace.pk in seen
                ],
                "hidden_grants": sum(1 for g in grants if g.workspace.pk not in seen),
                "default_for": [w for w in defaults if w.pk in seen],
                "granting": granting,
                "principal_options": select_options(principals, selected=posted.get("principal")),
                "workspace_options": select_options(workspaces, selected=posted.get("workspace")),
                "grant_error": grant_error,
            },
            status=status,
        )


class RolePage(_RoleView):
    """A custom role: GET shows its form and where it is granted, POST saves it."""

    required_permissions = {"GET": "read:workspace_role", "POST": "update:workspace_role"}

    def get(self, request, role_id):
        return self.show(custom_role_or_404(self.account, role_id))

    def post(self, request, role_id):
        role = custom_role_or_404(self.account, role_id)
        form = CustomRoleForm(request.POST)
        done, saved = form_write(
            form,
            lambda data: rbac.custom_role_update(role=role, actor=request.user, **data),
            field_codes=_FIELD_CODES,
        )
        if done:
            messages.success(request, f"The role {saved.name} was saved.")
            return redirect(self.url("console-roles"))
        return self.show(role, form=form, status=422)


class RoleGrantPage(_RoleView):
    """Grant the custom role to a person, service account or team in a workspace (the service
    behind the API's ``user_access``/``bot_access``/``team_access``, with its audit event)."""

    required_permissions = {"POST": "administrate:workspace"}

    def post(self, request, role_id):
        role = custom_role_or_404(self.account, role_id)
        principal = parse_principal(
            self.account, request.POST.get("principal"), kinds=("user", "bot", "team")
        )
        workspace_id = parse_uuid(request.POST.get("workspace"))
        workspace = workspace_or_404(self.account, workspace_id) if workspace_id is not None else None
        if principal is None or workspace is None:
            return self.show(role, grant_error="Choose a workspace and who to grant the role to.", status=422)
        try:
            workspace_access_grant(
                workspace=workspace, principal=principal, role=ResolvedRole(custom=role), actor=request.user
            )
        except AppError as error:
            return self.show(role, grant_error=error_message(error), status=422)
        messages.success(request, f"{principal} is {role.name} in {workspace.name}.")
        return redirect(self.url("console-role", role.pk))


class RoleDeletePage(ConfirmedActionPage):
    required_permissions = {"GET": "delete:workspace_role", "POST": "delete:workspace_role"}
    nav_url_name = back_url_name = "console-roles"

    def target(self, object_id) -> CustomRole:
        return custom_role_or_404(self.account, object_id)

    def confirmation(self, target: CustomRole) -> Confirmation:
        return Confirmation(
            title=f"Delete the role {target.name}?",
            explanation="A role still granted somewhere, or the default role of a workspace, cannot be deleted.",
            action_label="Delete role",
            done=f"The role {target.name} was deleted.",
        )

    def act(self, target: CustomRole) -> None:
        rbac.custom_role_delete(role=target, actor=self.request.user)
