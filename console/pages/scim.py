"""SCIM provisioning: the base URL to give the identity provider, its tokens (created with a name and
shown once with a copy button; revoked after asking) and the activity journal, filtered by method,
answer, token and age, paged. The same selectors, services and audit events as ``scim…`` of the
account API, under the same permissions (SCIM is configured with single sign-on: reading needs
``read:sso``, every change ``administrate:sso``)."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone

from accounts.models import ScimToken
from accounts.scim import services
from accounts.scim.selectors import scim_activity_list, scim_base_url, scim_token_get, scim_token_list
from billing.entitlements import plan_for
from console.pages.base import Confirmation, ConfirmedActionPage, ConsolePage, error_message
from core.errors import AppError

ACTIVITY_PAGE = 50
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SINCE = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


class TokenForm(forms.Form):
    name = forms.CharField(label="Token name (what it is for, e.g. the IdP's name)", max_length=200)


class ActivityFilter(forms.Form):
    """The journal's filters, from the query string; a value it cannot read is ignored."""

    method = forms.ChoiceField(
        label="Method", required=False, choices=[("", "Any"), *[(m, m) for m in METHODS]]
    )
    status = forms.ChoiceField(
        label="Answer",
        required=False,
        choices=[("", "Any"), ("2", "2xx success"), ("4", "4xx refused"), ("5", "5xx failed")],
    )
    token = forms.ChoiceField(label="Token", required=False)
    since = forms.ChoiceField(
        label="Since",
        required=False,
        choices=[
            ("", "Any time"),
            ("1h", "Last hour"),
            ("24h", "Last day"),
            ("7d", "Last 7 days"),
            ("30d", "Last 30 days"),
        ],
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, data, *, tokens):
        super().__init__(data)
        self.fields["token"].choices = [
            ("", "Any"),
            *[(str(t.pk), f"{t.name or 'unnamed'} ({t.hint}…)") for t in tokens],
        ]


def token_or_404(account, token_id) -> ScimToken:
    token = scim_token_get(account=account, token_id=token_id)
    if token is None:
        raise Http404("Not Found")
    return token


class _ScimView(ConsolePage):
    template_name = "console/scim.html"
    nav_url_name = "console-scim"

    def show(self, *, form=None, new_token=None, settings_error=None, status: int = 200):
        tokens = list(scim_token_list(account=self.account))
        filters = ActivityFilter(self.request.GET, tokens=tokens)
        filters.is_valid()  # an unreadable filter is dropped, not refused
        chosen = {
            name: filters.cleaned_data.get(name) for name in ("method", "status", "token", "since", "page")
        }
        page = chosen["page"] or 1
        rows = scim_activity_list(
            account=self.account,
            limit=ACTIVITY_PAGE + 1,
            offset=(page - 1) * ACTIVITY_PAGE,
            method=chosen["method"] or None,
            status_class=int(chosen["status"]) if chosen["status"] else None,
            token_id=chosen["token"] or None,
            since=timezone.now() - SINCE[chosen["since"]] if chosen["since"] else None,
        )
        query = self.request.GET.copy()
        query.pop("page", None)
        return self.page(
            {
                "can_administer": self.can("administrate:sso"),
                "feature_on_plan": plan_for(self.account).has("scim"),
                "base_url": {
                    "label": "SCIM base URL",
                    "value": scim_base_url(self.account.id),
                    "copy_id": "scim-base-url",
                },
                "tokens": tokens,
                "form": form or TokenForm(),
                "new_token": new_token,
                "filters": filters,
                "activity": rows[:ACTIVITY_PAGE],
                "page": page,
                "has_next": len(rows) > ACTIVITY_PAGE,
                "filter_query": query.urlencode(),
                "exempt_from_ip_allowlist": services.scim_settings(self.account)["exempt_from_ip_allowlist"],
                "settings_error": settings_error,
            },
            status=status,
        )


class ScimPage(_ScimView):
    required_permissions = {"GET": "read:sso", "POST": "administrate:sso"}

    def get(self, request):
        return self.show()

    def post(self, request):
        """A new token: its secret is shown once, on this answer."""
        form = TokenForm(request.POST)
        if form.is_valid():
            try:
                token, raw = services.scim_token_create(
                    account=self.account, actor=request.user, name=form.cleaned_data["name"]
                )
            except AppError as error:
                form.add_error(None, error_message(error))
            else:
                return self.show(new_token={"token": token, "plaintext": raw}, status=201)
        return self.show(form=form, status=422)


class ScimSettingsPage(_ScimView):
    """Whether the IdP's SCIM requests are exempt from the account's IP allowlist."""

    required_permissions = {"POST": "administrate:sso"}

    def post(self, request):
        choice = request.POST.get("exempt_from_ip_allowlist")
        if choice not in ("on", "off"):
            return self.show(settings_error="Choose on or off.", status=422)
        try:
            services.scim_settings_update(
                account=self.account, actor=request.user, exempt_from_ip_allowlist=choice == "on"
            )
        except AppError as error:
            return self.show(settings_error=error_message(error), status=422)
        messages.success(
            request,
            "SCIM requests are exempt from the IP allowlist."
            if choice == "on"
            else "SCIM requests are held to the IP allowlist.",
        )
        return redirect(self.url("console-scim"))


class ScimTokenRevokePage(ConfirmedActionPage):
    required_permissions = {"GET": "administrate:sso", "POST": "administrate:sso"}
    nav_url_name = back_url_name = "console-scim"

    def target(self, object_id) -> ScimToken:
        return token_or_404(self.account, object_id)

    def confirmation(self, target: ScimToken) -> Confirmation:
        label = f"{target.name or 'unnamed'} ({target.hint}…)"
        return Confirmation(
            title=f"Revoke the SCIM token {label}?",
            explanation=(
                "The identity provider's next SCIM request with it is refused: provisioning stops until "
                "it is given a new token."
            ),
            action_label="Revoke token",
            done=f"The SCIM token {label} was revoked.",
        )

    def act(self, target: ScimToken) -> None:
        services.scim_token_revoke(token=target, actor=self.request.user)
