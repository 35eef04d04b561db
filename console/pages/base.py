"""What every account page of the console stands on: the gate, the layout's context, the answers.

``ConsolePage`` serves ``/console/<account>/…`` to a browser session. Before a handler runs it sends
an anonymous visitor to the sign-in page, then asks the one gate (``access.gate.authorize_account``
on the console surface: membership, the account's IP allowlist and SSO enforcement, the permission)
for the permission the method declares in ``required_permissions`` (a map from HTTP method to an
account permission of ``accounts.permissions``). A person without access to the account gets 404,
as for an account that does not exist; one without the permission gets 403 (a forged POST
included). A method the page does not declare answers 405.

Pages read through selectors and write through the services the account API calls, so the audit
events are the API's; a service's refusal (``core.errors.AppError``) is shown inline with its own
message (422).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from html import escape as html_escape
from typing import ClassVar

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.views import View

from access.gate import Outcome, Surface, authorize_account
from access.views import caller_of
from accounts.permissions import AccountRole
from accounts.selectors import account_memberships_of, workspace_names_for
from billing.entitlements import plan_for
from billing.plans import Feature
from billing.selectors import billing_banner
from console.ui import ui_base
from core.errors import AppError
from tenants.models import Account


@dataclass(frozen=True)
class NavItem:
    """A page of the account's console: shown when the person holds ``permission`` and the plan
    has ``feature`` (when it names one)."""

    label: str
    url_name: str
    permission: str
    feature: Feature | None = None


NAVIGATION: tuple[NavItem, ...] = (
    NavItem("Members", "console-members", "read:account_membership"),
    NavItem("Service accounts", "console-service-accounts", "read:bot", "service_accounts"),
    NavItem("Teams", "console-teams", "read:team", "teams"),
    NavItem("Roles", "console-roles", "read:workspace_role"),
    NavItem("Workspaces", "console-workspaces", "read:workspace"),
    NavItem("IP allowlist", "console-ip-allowlist", "read:ip_allowlist", "ip_allowlist"),
    NavItem("Audit log", "console-audit-log", "read:audit_event", "audit_log"),
    NavItem("Billing", "console-billing", "read:billing"),
    NavItem("Single sign-on", "console-sso", "read:sso", "sso"),
    NavItem("SCIM", "console-scim", "read:sso", "scim"),
)


def navigation_for(account: Account, permissions: frozenset[str]) -> list[NavItem]:
    plan = plan_for(account)
    return [
        item
        for item in NAVIGATION
        if item.permission in permissions and (item.feature is None or plan.has(item.feature))
    ]


def select_options(choices, *, selected: object = None) -> SafeString:
    """``<option>`` elements of ``(value, label)`` pairs, escaped, the one whose value is
    ``selected`` (compared as text) selected. Built in one pass here rather than by a template
    loop: a select of an account's people has an option per member and service account (1,200
    on a big account), which a template loop renders several times slower. Escaped as Django's
    ``escape`` does (``html.escape`` with quotes), without its lazy-string wrapper per call."""
    chosen = None if selected is None else str(selected)
    parts = []
    for value, label in choices:
        value = str(value)
        mark = " selected" if value == chosen else ""
        parts.append(f'<option value="{html_escape(value)}"{mark}>{html_escape(str(label))}</option>')
    return mark_safe("".join(parts))  # noqa: S308 - every value and label is escaped above


def time_element(moment: datetime | None) -> SafeString | None:
    """``<time datetime="<ISO 8601>">YYYY-MM-DD HH:MM</time>`` in the current time zone, as the
    template filters ``date:'c'`` and ``date:"Y-m-d H:i"`` write it, or None. For a column of
    times in a long list: Django's ``date`` filter costs some 25 µs a call, two per row."""
    if moment is None:
        return None
    local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    return mark_safe(  # noqa: S308 - digits and separators only
        f'<time datetime="{local.isoformat()}">{local.strftime("%Y-%m-%d %H:%M")}</time>'
    )


def error_message(error: AppError) -> str:
    """A service's refusal, as the page shows it."""
    return error.message


def form_write(form, write, *, field_codes: dict[str, frozenset[str]] | None = None) -> tuple[bool, object]:
    """``(True, write(form.cleaned_data))`` for a valid form; ``(False, None)`` for an invalid one
    or when the service refuses, its message added to the form: under the field whose codes
    (``field_codes``) name the refusal, else as the form's own error."""
    if not form.is_valid():
        return False, None
    try:
        return True, write(form.cleaned_data)
    except AppError as error:
        field = next((name for name, codes in (field_codes or {}).items() if error.code in codes), None)
        form.add_error(field, error_message(error))
        return False, None


def parse_account_role(value) -> AccountRole | None:
    try:
        return AccountRole(str(value or ""))
    except ValueError:
        return None


def workspace_switcher(request, account: Account, role: str, permissions: frozenset[str]) -> list[dict]:
    """The workspaces of ``account`` this person reaches (one query), each with its console page
    (when the person may read workspaces) and its Prefect UI."""
    rows = workspace_names_for(request.user, account=account, role=role)
    if not rows:
        return []
    page_of = None
    if "read:workspace" in permissions:
        prefix, _, suffix = reverse("console-workspace", args=[account.handle, _ROW_ID]).rpartition(
            str(_ROW_ID)
        )
        page_of = lambda pk: f"{prefix}{pk}{suffix}"  # noqa: E731 - one reverse for every row
    return [
        {
            "id": pk,
            "name": name,
            "console_url": page_of(pk) if page_of else None,
            "ui_url": ui_base(account.pk, pk) + "/",
        }
        for pk, name in rows
    ]


def layout_context(
    request, account: Account | None = None, permissions: frozenset[str] = frozenset()
) -> dict:
    """What the base layout needs: the account and workspace switchers, the navigation for this
    person, and billing's banner (a payment overdue, the account read-only) shown to everyone in the
    account."""
    memberships = list(account_memberships_of(request.user))
    current = next((m for m in memberships if account is not None and m.account_id == account.pk), None)
    return {
        "account": account,
        "permissions": permissions,
        "switcher": [
            {
                "account": m.account,
                "role": AccountRole(m.role).label,
                "current": account is not None and m.account_id == account.pk,
            }
            for m in memberships
        ],
        "workspace_switcher": (
            workspace_switcher(request, account, current.role, permissions) if current is not None else []
        ),
        "navigation": navigation_for(account, permissions) if account is not None else [],
        "plan": plan_for(account) if account is not None else None,
        "billing_banner": billing_banner(account) if account is not None else None,
    }


#: Stands for a row's id in ``ConsolePage.url_per_row`` (a valid id for every ``<uuid:…>`` route).
_ROW_ID = uuid.UUID("00000000-0000-4000-8000-00000000d1d0")


class ConsolePage(View):
    required_permissions: ClassVar[dict[str, str]] = {}
    template_name: ClassVar[str] = ""
    nav_url_name: ClassVar[str] = ""

    account: Account
    permissions: frozenset[str]

    @classmethod
    def declared_requirement(cls, method: str) -> str | None:
        return cls.required_permissions.get(method.upper())

    def dispatch(self, request, *args, **kwargs):
        account_ref = kwargs.pop("account")
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        need = self.declared_requirement("GET" if request.method == "HEAD" else request.method)
        if need is None:
            return HttpResponseNotAllowed(sorted(self.required_permissions))
        decision = authorize_account(caller_of(request, Surface.CONSOLE), account_ref, need)
        if decision.outcome is Outcome.NOT_FOUND:
            raise Http404("Not Found")
        if not decision.allowed:
            context = {
                **layout_context(request, decision.account, decision.permissions),
                "detail": decision.detail,
            }
            if decision.reason != "permission":  # the door refused: no navigation into the account
                context["navigation"] = context["workspace_switcher"] = []
            return render(request, "console/forbidden.html", context, status=403)
        self.account, self.permissions = decision.account, decision.permissions
        request.account = decision.account
        return super().dispatch(request, *args, **kwargs)

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def url(self, name: str, *args) -> str:
        return reverse(name, args=[self.account.handle, *args])

    def url_per_row(self, name: str, *args) -> Callable[[object], str]:
        """``url(name, *args, <id>)`` for many ids with one ``reverse``: a page of 100 rows with a
        link or a form each would otherwise resolve the route 100 times (``{% url %}`` in a loop)."""
        prefix, _, suffix = self.url(name, *args, _ROW_ID).rpartition(str(_ROW_ID))
        return lambda row_id: f"{prefix}{row_id}{suffix}"

    def page(self, context: dict, *, status: int = 200, template: str | None = None):
        full = {
            **layout_context(self.request, self.account, self.permissions),
            "nav_current": self.nav_url_name,
            **context,
        }
        return render(self.request, template or self.template_name, full, status=status)


@dataclass(frozen=True)
class Confirmation:
    title: str
    explanation: str
    action_label: str
    done: str  # the message once done


class ConfirmedActionPage(ConsolePage):
    """A destructive action asks first: GET shows what will happen, POST does it through the
    service and goes back to ``back_url_name`` (or shows the service's refusal on the same page).
    Subclasses give ``target`` (the object the path names, or 404), ``confirmation`` and ``act``."""

    back_url_name: ClassVar[str]

    def target(self, object_id):
        raise NotImplementedError

    def confirmation(self, target) -> Confirmation:
        raise NotImplementedError

    def act(self, target) -> None:
        raise NotImplementedError

    def back_url(self, target) -> str:
        return self.url(self.back_url_name)

    def _confirm(self, target, *, error: str | None = None, status: int = 200):
        said = self.confirmation(target)
        return self.page(
            {
                "title": said.title,
                "explanation": said.explanation,
                "action_label": said.action_label,
                "cancel_url": self.back_url(target),
                "error": error,
            },
            status=status,
            template="console/confirm.html",
        )

    def enter(self, **parents) -> None:
        """A page under another object (``teams/<team_id>/members/<object_id>/remove``) looks that
        object up here from the path's other ids (404 when it is not the account's)."""

    def get(self, request, object_id, **parents):
        self.enter(**parents)
        return self._confirm(self.target(object_id))

    def post(self, request, object_id, **parents):
        self.enter(**parents)
        target = self.target(object_id)
        try:
            self.act(target)
        except AppError as error:
            return self._confirm(target, error=error_message(error), status=422)
        messages.success(request, self.confirmation(target).done)
        return redirect(self.back_url(target))
