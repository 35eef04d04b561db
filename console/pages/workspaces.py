"""Workspaces: those of the account the person reaches, each with its default role and a link into
its Prefect UI; create one (the plan's workspace limit is the service's refusal, shown inline);
rename one and set its default role; who has access to it and through what (the account's Owners
and Admins, grants to people, service accounts and teams, and the default role every member
holds); grant and revoke access. The same services (and audit events) as ``workspaces/`` of the
account API and ``user_access``/``bot_access``/``team_access`` under the workspace."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect

from accounts import rbac
from accounts.models import WorkspaceRoleGrant
from accounts.permissions import AccountRole
from accounts.roles import role_of
from accounts.selectors import (
    account_admins,
    account_workspace_get,
    workspace_access,
    workspace_default_role_get,
    workspace_grants_all,
    workspace_list_for,
)
from accounts.services import workspace_access_grant, workspace_access_revoke
from accounts.tenancy import workspace_create
from billing.entitlements import plan_for
from console.pages.base import (
    Confirmation,
    ConfirmedActionPage,
    ConsolePage,
    error_message,
    form_write,
    select_options,
)
from console.pages.choices import (
    parse_principal,
    parse_uuid,
    parse_workspace_role,
    principal_choices,
    workspace_role_choices,
)
from console.ui import ui_base
from core.errors import AppError
from tenants.models import Workspace

_FIELD_CODES = {"name": frozenset({"invalid_name", "name_taken", "handle_taken", "invalid_handle"})}
NO_DEFAULT = "none"


class WorkspaceForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    description = forms.CharField(label="Description", max_length=2000, required=False)


def ui_url(workspace: Workspace) -> str:
    return ui_base(workspace.account_id, workspace.pk) + "/"


def role_label(row) -> str:
    return role_of(row).name if row is not None else ""


class WorkspacesPage(ConsolePage):
    required_permissions = {"GET": "read:workspace", "POST": "create:workspace"}
    template_name = "console/workspaces.html"
    nav_url_name = "console-workspaces"

    def show(self, *, form=None, status: int = 200):
        workspaces = workspace_list_for(self.request.user, account=self.account)
        rows = [
            {
                "workspace": w,
                "default_role": role_label(w.default_role_or_none),
                "ui_url": ui_url(w),
            }
            for w in workspaces
        ]
        plan = plan_for(self.account)
        return self.page(
            {"rows": rows, "form": form or WorkspaceForm(), "workspaces_limit": plan.max_workspaces},
            status=status,
        )

    def get(self, request):
        return self.show()

    def post(self, request):
        form = WorkspaceForm(request.POST)
        done, workspace = form_write(
            form,
            lambda data: workspace_create(account=self.account, actor=request.user, **data),
            field_codes=_FIELD_CODES,
        )
        if done:
            messages.success(request, f"The workspace {workspace.name} was created.")
            return redirect(self.url("console-workspace", workspace.pk))
        return self.show(form=form, status=422)


def workspace_or_404(account, workspace_id) -> Workspace:
    workspace_id = parse_uuid(workspace_id)
    workspace = account_workspace_get(account=account, workspace_id=workspace_id) if workspace_id else None
    if workspace is None:
        raise Http404("Not Found")
    return workspace


class _WorkspaceView(ConsolePage):
    template_name = "console/workspace.html"
    nav_url_name = "console-workspaces"

    def visible(self, workspace_id) -> Workspace:
        """The workspace, when the person reaches it (as ``GET workspaces/<id>`` of the API)."""
        workspace = workspace_or_404(self.account, workspace_id)
        if workspace_access(self.request.user, workspace) is None:
            raise Http404("Not Found")
        return workspace

    def show(self, workspace: Workspace, *, form=None, errors: dict | None = None, status: int = 200):
        default = workspace_default_role_get(workspace)
        editing = self.can("administrate:workspace")
        principals = principal_choices(self.account, teams=True) if editing else []
        grants = [
            {
                "grant": grant,
                "principal": grant.user or grant.service_account or grant.team,
                "role": role_of(grant),
            }
            for grant in workspace_grants_all(workspace)
        ]
        return self.page(
            {
                "workspace": workspace,
                "current_workspace_id": workspace.pk,
                "ui_url": ui_url(workspace),
                "admins": [
                    {"email": email, "role": AccountRole(role).label}
                    for email, role in account_admins(account=self.account)
                ],
                "grants": grants,
                "default_role": role_of(default) if default else None,
                "principal_options": select_options(principals),
                "roles": workspace_role_choices(self.account) if editing else [],
                "principals": principals,
                "no_default": NO_DEFAULT,
                "form": form
                or WorkspaceForm(initial={"name": workspace.name, "description": workspace.description}),
                "errors": errors or {},
            },
            status=status,
        )


class WorkspacePage(_WorkspaceView):
    """A workspace: who has access through what; POST renames it and sets its default role."""

    required_permissions = {"GET": "read:workspace", "POST": "administrate:workspace"}

    def get(self, request, workspace_id):
        return self.show(self.visible(workspace_id))

    def post(self, request, workspace_id):
        workspace = workspace_or_404(self.account, workspace_id)
        form = WorkspaceForm(request.POST)
        chosen = request.POST.get("default_role", NO_DEFAULT)
        role = None if chosen == NO_DEFAULT else parse_workspace_role(self.account, chosen)
        if chosen != NO_DEFAULT and role is None:
            form.add_error(None, "Choose one of the workspace roles as the default role.")
        done, saved = form_write(
            form,
            lambda data: rbac.workspace_update_with_default_role(
                workspace=workspace, actor=request.user, changes=data, default_role=role
            ),
            field_codes=_FIELD_CODES,
        )
        if done:
            messages.success(request, f"The workspace {saved.name} was saved.")
            return redirect(self.url("console-workspace", saved.pk))
        return self.show(workspace, form=form, status=422)


class WorkspaceAccessPage(_WorkspaceView):
    """Grant a person, a service account or a team a role in the workspace."""

    required_permissions = {"POST": "administrate:workspace"}

    def post(self, request, workspace_id):
        workspace = workspace_or_404(self.account, workspace_id)
        principal = parse_principal(
            self.account, request.POST.get("principal"), kinds=("user", "bot", "team")
        )
        role = parse_workspace_role(self.account, request.POST.get("role"))
        if principal is None or role is None:
            return self.show(workspace, errors={"grant": "Choose who and a role."}, status=422)
        try:
            workspace_access_grant(workspace=workspace, principal=principal, role=role, actor=request.user)
        except AppError as error:
            return self.show(workspace, errors={"grant": error_message(error)}, status=422)
        messages.success(request, f"{principal} is {role.name} in {workspace.name}.")
        return redirect(self.url("console-workspace", workspace.pk))


class WorkspaceAccessRevokePage(ConfirmedActionPage):
    required_permissions = {"GET": "administrate:workspace", "POST": "administrate:workspace"}
    nav_url_name = "console-workspaces"

    def enter(self, *, workspace_id) -> None:
        self.workspace = workspace_or_404(self.account, workspace_id)

    def target(self, object_id) -> WorkspaceRoleGrant:
        grant = workspace_grants_all(self.workspace).filter(pk=object_id).first()
        if grant is None:
            raise Http404("Not Found")
        return grant

    def back_url(self, target) -> str:
        return self.url("console-workspace", self.workspace.pk)

    def confirmation(self, target: WorkspaceRoleGrant) -> Confirmation:
        who = target.user or target.service_account or target.team
        return Confirmation(
            title=f"Revoke the access of {who} to {self.workspace.name}?",
            explanation=f"The grant of {role_of(target).name} is removed; other grants, the account role "
            "and the workspace's default role still apply.",
            action_label="Revoke access",
            done=f"The access of {who} to {self.workspace.name} was revoked.",
        )

    def act(self, target: WorkspaceRoleGrant) -> None:
        workspace_access_revoke(
            workspace=self.workspace,
            principal=target.user or target.service_account or target.team,
            actor=self.request.user,
        )
