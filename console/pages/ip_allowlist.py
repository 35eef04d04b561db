"""The IP allowlist: its entries with when each was last seen, the address this browser comes
from and whether the list lets it in; adding an entry shows first who the new list would block (the
dry run, by the addresses seen in the last 30 days) and saves only when asked; removing one asks
first, with the same preview; the enforcement switch. The lock-out guard's refusals (a list that
would exclude your own address while enforced, turning enforcement on from outside the list) are
shown inline. The same services (and audit events) as ``ip_allowlist`` and ``settings`` of the
account API: each change replaces the whole list, as ``PUT ip_allowlist`` does."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect

from accounts import ip_allowlist, rbac
from accounts.models import IpAllowlistEntry
from audit.context import client_ip
from console.pages.base import Confirmation, ConfirmedActionPage, ConsolePage, error_message
from console.pages.choices import parse_uuid
from core.errors import AppError

_NETWORK_CODES = frozenset({"invalid_ip_network", "duplicate_entry", "lockout"})


class EntryForm(forms.Form):
    ip_network = forms.CharField(label="IP address or CIDR range", max_length=64)
    description = forms.CharField(label="Description", max_length=500, required=False)


def _wire(entries) -> list[dict]:
    return [{"ip_network": e.ip_network, "enabled": e.enabled, "description": e.description} for e in entries]


class _AllowlistView(ConsolePage):
    template_name = "console/ip_allowlist.html"
    nav_url_name = "console-ip-allowlist"

    def show(self, *, form=None, preview=None, enforcement_error=None, status: int = 200):
        ip = client_ip(self.request)
        return self.page(
            {
                "entries": list(ip_allowlist.entry_list(self.account)),
                "form": form or EntryForm(),
                "preview": preview,
                "your_ip": ip,
                "your_access": ip_allowlist.my_access(self.account, ip),
                "enforced": bool((self.account.settings or {}).get("enforce_ip_allowlist")),
                "feature_on_plan": ip_allowlist.plan_allows(self.account),
                "enforcement_error": enforcement_error,
                "max_entries": ip_allowlist.MAX_ENTRIES,
            },
            status=status,
        )


class IpAllowlistPage(_AllowlistView):
    """GET shows the list; POST adds an entry: ``step=preview`` answers the dry run of the list
    with it, ``step=save`` saves it."""

    required_permissions = {"GET": "read:ip_allowlist", "POST": "update:ip_allowlist"}

    def get(self, request):
        return self.show()

    def post(self, request):
        form = EntryForm(request.POST)
        if form.is_valid():
            proposed = [
                *_wire(ip_allowlist.entry_list(self.account)),
                {
                    "ip_network": form.cleaned_data["ip_network"],
                    "enabled": True,
                    "description": form.cleaned_data["description"],
                },
            ]
            try:
                if request.POST.get("step") != "save":
                    result = ip_allowlist.dry_run(self.account, proposed)
                    return self.show(form=form, preview=result)
                ip_allowlist.allowlist_replace(
                    account=self.account,
                    entries=proposed,
                    actor=request.user,
                    requester_ip=client_ip(request),
                )
            except AppError as error:
                form.add_error("ip_network" if error.code in _NETWORK_CODES else None, error_message(error))
            else:
                messages.success(request, f"{form.cleaned_data['ip_network']} was added to the allowlist.")
                return redirect(self.url("console-ip-allowlist"))
        return self.show(form=form, status=422)


class IpAllowlistEnforcementPage(_AllowlistView):
    """The enforcement switch (the ``enforce_ip_allowlist`` account setting): ``enforce=on|off``."""

    required_permissions = {"POST": "update:account"}

    def post(self, request):
        choice = request.POST.get("enforce")
        if choice not in ("on", "off"):
            return self.show(enforcement_error="Choose to turn enforcement on or off.", status=422)
        try:
            rbac.account_settings_update(
                account=self.account,
                changes={"enforce_ip_allowlist": choice == "on"},
                actor=request.user,
                requester_ip=client_ip(request),
            )
        except AppError as error:
            return self.show(enforcement_error=error_message(error), status=422)
        messages.success(request, f"Enforcement of the IP allowlist is {choice}.")
        return redirect(self.url("console-ip-allowlist"))


class IpAllowlistRemovePage(ConfirmedActionPage):
    required_permissions = {"GET": "update:ip_allowlist", "POST": "update:ip_allowlist"}
    nav_url_name = back_url_name = "console-ip-allowlist"

    def target(self, object_id) -> IpAllowlistEntry:
        entry_id = parse_uuid(object_id)
        entry = ip_allowlist.entry_get(self.account, entry_id) if entry_id else None
        if entry is None:
            raise Http404("Not Found")
        return entry

    def _rest(self, target: IpAllowlistEntry) -> list[dict]:
        return _wire(e for e in ip_allowlist.entry_list(self.account) if e.pk != target.pk)

    def confirmation(self, target: IpAllowlistEntry) -> Confirmation:
        blocked = ip_allowlist.dry_run(self.account, self._rest(target))["would_block"]
        if blocked:
            who = "; ".join(f"{b['name']} ({', '.join(b['blocked_ips'])})" for b in blocked)
            effect = f"Once enforced, the list without it would block: {who}."
        else:
            effect = "Nobody seen in the last 30 days would be blocked by the list without it."
        return Confirmation(
            title=f"Remove {target.ip_network} from the IP allowlist?",
            explanation=effect,
            action_label="Remove entry",
            done=f"{target.ip_network} was removed from the allowlist.",
        )

    def act(self, target: IpAllowlistEntry) -> None:
        ip_allowlist.allowlist_replace(
            account=self.account,
            entries=self._rest(target),
            actor=self.request.user,
            requester_ip=client_ip(self.request),
        )
