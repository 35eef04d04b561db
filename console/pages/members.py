"""Members and invitations: the account's people with their role, how they sign in and when they
were last seen; invite by email with an account role and, optionally, a role in some of the
account's workspaces (applied when the invitation is accepted); change a role; remove; revoke an invitation; the seats
used of the plan's. The same services (and so the same audit events) as ``account_memberships/``
and ``invitations/`` of the account API, under the same permissions; the seat ledger names the
console as the door its invitations, revocations and removals came through."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect

from accounts import rbac
from accounts.models import AccountMembership, Invitation
from accounts.permissions import AccountRole
from accounts.selectors import (
    invitation_get,
    invitation_pending_list,
    membership_get,
    membership_list_with_sign_in,
    workspace_list_for,
)
from accounts.services import membership_change_role, membership_remove
from billing.entitlements import plan_for, seats_used
from billing.models import Door
from console.pages.base import (
    Confirmation,
    ConfirmedActionPage,
    ConsolePage,
    error_message,
    parse_account_role,
    select_options,
    time_element,
)
from console.pages.choices import parse_workspace_role, workspace_role_choices
from core.errors import AppError

#: Members per page: the page renders a role form per row, and an account may hold thousands.
PAGE_SIZE = 100

# A refusal of these codes is about the address typed in: shown under the email field.
_EMAIL_CODES = frozenset({"invalid_email", "already_member", "already_invited"})


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address", max_length=254)
    role = forms.ChoiceField(label="Account role", choices=AccountRole.choices, initial=AccountRole.MEMBER)


#: The name of the invitation form's select of a role in one workspace: ``grant-<workspace id>``.
GRANT_FIELD = "grant-"


def invitation_grants_form(
    account, actor, data=None, *, role_choices: list | None = None
) -> tuple[list[dict], list, str | None]:
    """The invitation form's workspace grants: one row per workspace of the account (a select of
    "no access" and every workspace role, ``role_choices`` when already read), the grants chosen
    in ``data`` as ``(workspace, role)`` pairs for ``rbac.invitation_create``, and the error when
    a choice names no role."""
    workspaces = workspace_list_for(actor, account=account)
    if role_choices is None:
        role_choices = workspace_role_choices(account)
    choices = [("", "No access"), *role_choices]
    rows, grants, error = [], [], None
    for workspace in workspaces:
        chosen = (data or {}).get(f"{GRANT_FIELD}{workspace.pk}", "") or ""
        if chosen:
            role = parse_workspace_role(account, chosen)
            if role is None:
                error = f"Choose one of the roles for {workspace.name}."
            else:
                grants.append((workspace, role))
        rows.append(
            {
                "workspace": workspace,
                "field": f"{GRANT_FIELD}{workspace.pk}",
                "options": select_options(choices, selected=chosen),
            }
        )
    return rows, grants, error


def invitation_grant_labels(invitations, workspaces, role_choices) -> dict:
    """``{invitation id: ["<workspace>: <role>", …]}`` from the names already read (no query per
    row): an invitation's grants name workspaces and roles (``workspace_role_choices``) by id."""
    names = {str(w.pk): w.name for w in workspaces}
    roles = dict(role_choices)
    return {
        invitation.pk: [
            f"{names.get(g.get('workspace_id'), 'a workspace not shown here')}: "
            f"{roles.get(g.get('workspace_role_id'), 'a role no longer defined')}"
            for g in invitation.workspace_grants or []
        ]
        for invitation in invitations
    }


def membership_or_404(account, membership_id) -> AccountMembership:
    membership = membership_get(account=account, membership_id=membership_id)
    if membership is None:
        raise Http404("Not Found")
    return membership


def sign_in_method(membership: AccountMembership) -> str:
    """How the person signs in: provisioned over SCIM, through single sign-on, or a password."""
    if getattr(membership, "scim_managed", False):
        return "SCIM-managed"
    if getattr(membership, "sso_linked", False):
        return "SSO"
    return "Password" if membership.user.has_usable_password() else "No password"


class _MembersView(ConsolePage):
    template_name = "console/members.html"
    nav_url_name = "console-members"

    def show(
        self,
        *,
        form: InviteForm | None = None,
        grant_rows: list | None = None,
        grant_error: str | None = None,
        row_errors: dict | None = None,
        status: int = 200,
    ):
        search = self.request.GET.get("q", "").strip()[:254]
        paginator = Paginator(membership_list_with_sign_in(account=self.account, search=search), PAGE_SIZE)
        listing = paginator.get_page(self.request.GET.get("page"))
        memberships = list(listing.object_list)
        # Each row's links and role select, built here once per page rather than per row in the
        # template (100 rows: a reverse and a loop over the roles each).
        role_url = self.url_per_row("console-member-role")
        remove_url = self.url_per_row("console-member-remove")
        role_options = {role: select_options(AccountRole.choices, selected=role) for role in AccountRole}
        rows = [
            {
                "membership": m,
                "role": AccountRole(m.role),
                "role_options": role_options[AccountRole(m.role)],
                "role_url": role_url(m.pk),
                "remove_url": remove_url(m.pk),
                "sign_in": sign_in_method(m),
                "last_seen": time_element(m.user.last_login),
                "error": (row_errors or {}).get(m.pk),
            }
            for m in memberships
        ]
        invitations = (
            list(invitation_pending_list(account=self.account)) if self.can("read:invitation") else []
        )
        revoke_url = self.url_per_row("console-invitation-revoke")
        inviting = grant_rows is None and self.can("create:invitation")
        granted = any(i.workspace_grants for i in invitations)
        # The account's workspace roles, read once for the form's selects and the grants' labels.
        role_choices = workspace_role_choices(self.account) if inviting or granted else []
        if inviting:
            grant_rows, _, _ = invitation_grants_form(
                self.account, self.request.user, role_choices=role_choices
            )
        workspaces = [row["workspace"] for row in grant_rows or []]
        if granted and not workspaces:
            workspaces = workspace_list_for(self.request.user, account=self.account)
        grant_labels = invitation_grant_labels(invitations, workspaces, role_choices)
        return self.page(
            {
                "rows": rows,
                "listing": listing,
                "search": search,
                "invitations": [
                    {
                        "invitation": i,
                        "grants": grant_labels[i.pk],
                        "expires": time_element(i.expires_at),
                        "revoke_url": revoke_url(i.pk),
                    }
                    for i in invitations
                ],
                "form": form or InviteForm(),
                "grant_rows": grant_rows or [],
                "grant_error": grant_error,
                "seats_used": seats_used(self.account),
                "seats_limit": plan_for(self.account).max_seats,
                "me_id": self.request.user.pk,
                # Asked once here, not in each of the 100 rows.
                "can_change_role": self.can("update:account_membership"),
                "can_remove": self.can("delete:account_membership"),
                "can_revoke": self.can("update:invitation"),
            },
            status=status,
        )


class MembersPage(_MembersView):
    required_permissions = {"GET": "read:account_membership", "POST": "create:invitation"}

    def get(self, request):
        return self.show()

    def post(self, request):
        """Invite by email with an account role and optional workspace grants; the invitation is
        emailed with its accept link."""
        form = InviteForm(request.POST)
        grant_rows, grants, grant_error = invitation_grants_form(self.account, request.user, request.POST)
        if grant_error is not None:
            form.is_valid()
            return self.show(form=form, grant_rows=grant_rows, grant_error=grant_error, status=422)
        if form.is_valid():
            try:
                rbac.invitation_create(
                    account=self.account,
                    email=form.cleaned_data["email"],
                    account_role=form.cleaned_data["role"],
                    workspace_grants=grants,
                    actor=request.user,
                    door=Door.CONSOLE,
                )
            except AppError as error:
                form.add_error("email" if error.code in _EMAIL_CODES else None, error_message(error))
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect(self.url("console-members"))
        return self.show(form=form, grant_rows=grant_rows, status=422)


class MemberRolePage(_MembersView):
    required_permissions = {"POST": "update:account_membership"}

    def post(self, request, membership_id):
        membership = membership_or_404(self.account, membership_id)
        role = parse_account_role(request.POST.get("role"))
        if role is None:
            return self.show(row_errors={membership.pk: "Choose one of the account roles."}, status=422)
        try:
            membership_change_role(membership=membership, role=role, actor=request.user)
        except AppError as error:
            return self.show(row_errors={membership.pk: error_message(error)}, status=422)
        messages.success(request, f"{membership.user.email} is now {role.label}.")
        return redirect(self.url("console-members"))


class MemberRemovePage(ConfirmedActionPage):
    required_permissions = {"GET": "delete:account_membership", "POST": "delete:account_membership"}
    nav_url_name = back_url_name = "console-members"

    def target(self, object_id) -> AccountMembership:
        return membership_or_404(self.account, object_id)

    def confirmation(self, target: AccountMembership) -> Confirmation:
        email = target.user.email
        return Confirmation(
            title=f"Remove {email}?",
            explanation=(
                f"{email} loses access to {self.account.name} and every grant in its workspaces, "
                "and their seat is freed."
            ),
            action_label="Remove member",
            done=f"{email} was removed.",
        )

    def act(self, target: AccountMembership) -> None:
        membership_remove(membership=target, actor=self.request.user, door=Door.CONSOLE)


class InvitationRevokePage(ConfirmedActionPage):
    required_permissions = {"GET": "update:invitation", "POST": "update:invitation"}
    nav_url_name = back_url_name = "console-members"

    def target(self, object_id) -> Invitation:
        invitation = invitation_get(account=self.account, invitation_id=object_id)
        if invitation is None:
            raise Http404("Not Found")
        return invitation

    def confirmation(self, target: Invitation) -> Confirmation:
        return Confirmation(
            title=f"Revoke the invitation to {target.email}?",
            explanation="Its link stops working and the seat it holds is freed.",
            action_label="Revoke invitation",
            done=f"The invitation to {target.email} was revoked.",
        )

    def act(self, target: Invitation) -> None:
        rbac.invitation_revoke(invitation=target, actor=self.request.user, door=Door.CONSOLE)
