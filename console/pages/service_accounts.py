"""Service accounts: create one with its first key, rotate its key with a grace period for the old
one (ending the old key at once asks first), delete it (its keys stop working); each key's last use and from where; 50 a page by name
(``?page=``) with a search by name (``?q=``). A new key is shown once,
on the answer to the form that made it, with a copy button; it is stored only as a hash. The same
services and audit events as ``bots/`` of the account API, under the same permissions."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.core.paginator import Paginator
from django.http import Http404
from django.utils import timezone

from accounts import rbac
from accounts.api_keys.selectors import service_account_newest_keys
from accounts.models import ServiceAccount
from accounts.permissions import AccountRole
from accounts.selectors import service_account_get, service_account_list
from accounts.services import service_account_delete
from billing.entitlements import plan_for
from console.pages.base import Confirmation, ConfirmedActionPage, ConsolePage, error_message
from core.errors import AppError

#: Service accounts per page: each row carries a rotation form, and an account may hold hundreds.
PAGE_SIZE = 50

# The grace periods offered on rotation (the service allows up to two days).
GRACE_CHOICES = (
    (0, "End the old key now"),
    (3600, "Keep the old key for 1 hour"),
    (86400, "Keep the old key for 1 day"),
    (172800, "Keep the old key for 2 days"),
)


def service_account_or_404(account, bot_id) -> ServiceAccount:
    bot = service_account_get(account=account, service_account_id=bot_id)
    if bot is None:
        raise Http404("Not Found")
    return bot


class ServiceAccountForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    role = forms.ChoiceField(label="Account role", choices=AccountRole.choices, initial=AccountRole.MEMBER)
    expires_in_days = forms.IntegerField(
        label="Key expires in (days, empty for never)", required=False, min_value=1, max_value=3650
    )


class _ServiceAccountsView(ConsolePage):
    template_name = "console/service_accounts.html"
    nav_url_name = "console-service-accounts"

    def show(self, *, form=None, new_key=None, row_errors=None, status: int = 200):
        search = self.request.GET.get("q", "").strip()[:200]
        paginator = Paginator(service_account_list(account=self.account, search=search), PAGE_SIZE)
        listing = paginator.get_page(self.request.GET.get("page"))
        bots = list(listing.object_list)
        # A refusal about a service account off this page is shown on its row, first.
        shown = {bot.pk for bot in bots}
        missing = [pk for pk in (row_errors or {}) if pk not in shown]
        if missing:
            bots = [*service_account_list(account=self.account, ids=missing), *bots]
        keys = service_account_newest_keys(bots)
        rows = [
            {
                "bot": bot,
                "role": AccountRole(bot.account_role),
                "key": keys.get(bot.id),
                "error": (row_errors or {}).get(bot.pk),
            }
            for bot in bots
        ]
        return self.page(
            {
                "rows": rows,
                "listing": listing,
                "search": search,
                "form": form or ServiceAccountForm(),
                "new_key": new_key,
                "grace_choices": GRACE_CHOICES,
                "feature_on_plan": self.plan_has_service_accounts(),
            },
            status=status,
        )

    def plan_has_service_accounts(self) -> bool:
        return plan_for(self.account).has("service_accounts")


class ServiceAccountsPage(_ServiceAccountsView):
    required_permissions = {"GET": "read:bot", "POST": "create:bot"}

    def get(self, request):
        return self.show()

    def post(self, request):
        form = ServiceAccountForm(request.POST)
        if form.is_valid():
            days = form.cleaned_data["expires_in_days"]
            try:
                bot, _key, plaintext = rbac.service_account_create_with_key(
                    account=self.account,
                    name=form.cleaned_data["name"],
                    actor=request.user,
                    account_role=form.cleaned_data["role"],
                    key_expires_at=timezone.now() + timedelta(days=days) if days else None,
                )
            except AppError as error:
                form.add_error(
                    "name" if error.code in ("name_taken", "name_required") else None, error_message(error)
                )
            else:
                return self.show(new_key={"bot": bot, "plaintext": plaintext}, status=201)
        return self.show(form=form, status=422)


class ServiceAccountRotatePage(_ServiceAccountsView):
    required_permissions = {"POST": "update:bot"}

    def post(self, request, bot_id):
        bot = service_account_or_404(self.account, bot_id)
        try:
            grace = int(request.POST.get("grace_seconds") or 0)
        except ValueError:
            return self.show(row_errors={bot.pk: "Choose one of the grace periods."}, status=422)
        if grace == 0 and request.POST.get("confirmed") != "yes":
            # Ending the old key at once breaks whatever still uses it: asked first, as a deletion is.
            return self.page(
                {
                    "title": f"Rotate the key of {bot.name} and end the old key now?",
                    "explanation": (
                        "The old key stops working at once: whatever still uses it (a worker, a "
                        "deployment, CI) fails until it has the new key. Choose a grace period to keep "
                        "the old key working while you replace it."
                    ),
                    "action_label": "Rotate and end the old key now",
                    "cancel_url": self.url("console-service-accounts"),
                    # A boosted form's answer does not change the address bar: the form names its URL.
                    "action_url": request.path,
                    "hidden_fields": [("grace_seconds", "0"), ("confirmed", "yes")],
                },
                template="console/confirm.html",
            )
        try:
            _key, plaintext = rbac.service_account_rotate_key(
                service_account=bot, actor=request.user, old_key_expires_in_seconds=grace
            )
        except AppError as error:
            return self.show(row_errors={bot.pk: error_message(error)}, status=422)
        return self.show(new_key={"bot": bot, "plaintext": plaintext, "rotated": True}, status=201)


class ServiceAccountDeletePage(ConfirmedActionPage):
    required_permissions = {"GET": "delete:bot", "POST": "delete:bot"}
    nav_url_name = back_url_name = "console-service-accounts"

    def target(self, object_id) -> ServiceAccount:
        return service_account_or_404(self.account, object_id)

    def confirmation(self, target: ServiceAccount) -> Confirmation:
        return Confirmation(
            title=f"Delete the service account {target.name}?",
            explanation="Its keys stop working at once and its workspace grants are removed.",
            action_label="Delete service account",
            done=f"The service account {target.name} was deleted.",
        )

    def act(self, target: ServiceAccount) -> None:
        service_account_delete(service_account=target, actor=self.request.user)
