"""Billing: the plan and its status, seats used of those bought, usage against the plan's limits,
the seat ledger (newest first), upgrading through Stripe Checkout and the customer portal; banners
for a pending upgrade (until the signed webhook confirms), the payment grace period and read-only.
The same selectors and services (and audit events) as ``billing`` of the account API."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect

from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.plans import PLANS
from console.pages.base import ConsolePage, error_message
from core.errors import AppError

LEDGER_ROWS = 50


class _BillingView(ConsolePage):
    template_name = "console/billing.html"
    nav_url_name = "console-billing"

    def show(self, *, error: str | None = None, status: int = 200):
        summary = billing_selectors.billing_summary(self.account)
        meters = [
            {"what": what, "used": summary["usage"][what], "limit": summary["limits"][what]}
            for what in ("seats", "workspaces", "deployments")
        ]
        return self.page(
            {
                "summary": summary,
                "meters": meters,
                "ledger": list(billing_selectors.seat_ledger_list(self.account)[:LEDGER_ROWS]),
                # Self-serve plans to move to; a plan set by sales changes through sales.
                "offers": [
                    p
                    for p in PLANS.values()
                    if p.self_serve and p.price_usd_month and p.key != summary["plan"]
                ]
                if PLANS[summary["plan"]].self_serve
                else [],
                "error": error,
                "returned": self.request.GET.get("checkout"),
                # This page shows the summary's warnings itself, the layout's banner among them.
                "billing_banner": None,
            },
            status=status,
        )

    def return_url(self) -> str:
        return settings.PUBLIC_URL + self.url("console-billing")


class BillingPage(_BillingView):
    required_permissions = {"GET": "read:billing"}

    def get(self, request):
        return self.show()


class CheckoutPage(_BillingView):
    """Start Checkout for ``plan``: off to Stripe, or (an account that already pays) the
    subscription changed in place, pending until the webhook confirms."""

    required_permissions = {"POST": "update:billing"}

    def post(self, request):
        back = self.return_url()
        try:
            started = billing_services.checkout_start(
                account=self.account,
                plan=str(request.POST.get("plan", "")),
                actor=request.user,
                success_url=back + "?checkout=success",
                cancel_url=back + "?checkout=cancelled",
                email=request.user.email,
            )
        except AppError as error:
            return self.show(error=error_message(error), status=422)
        if started.get("url"):
            return redirect(started["url"])
        messages.success(
            request, "The subscription was changed; the new plan applies once Stripe confirms it."
        )
        return redirect(self.url("console-billing"))


class PortalPage(_BillingView):
    required_permissions = {"POST": "update:billing"}

    def post(self, request):
        try:
            started = billing_services.portal_start(
                account=self.account, actor=request.user, return_url=self.return_url()
            )
        except AppError as error:
            return self.show(error=error_message(error), status=422)
        return redirect(started["url"])
