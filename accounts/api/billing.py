"""``/api/accounts/<id>/billing``: the account's plan, billing status, seats bought and used, limits
and usage, the next invoice date and warnings; the seat ledger; starting Stripe Checkout and the
customer portal (Owners and Admins: ``read:billing`` / ``update:billing``). And the page Checkout
returns to, which says the upgrade is pending until the signed webhook confirms it, and refreshes.
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any

from django.conf import settings
from django.http import HttpResponse
from rest_framework.response import Response

from accounts.api.base import AccountApi, Body, checked, iso, paged
from billing import selectors as billing_selectors
from billing import services as billing_services


def _summary_wire(summary: dict) -> dict:
    return {
        key: iso(value) if key in ("grace_until", "suspended_from", "next_invoice_at") else value
        for key, value in summary.items()
    }


def ledger_entry_wire(entry) -> dict:
    return {
        "id": str(entry.id),
        "occurred": iso(entry.occurred),
        "actor": {"kind": entry.actor_kind, "label": entry.actor_label},
        "door": entry.door,
        "reason": entry.reason,
        "seats_before": entry.seats_before,
        "seats_after": entry.seats_after,
        "billed_before": entry.billed_before,
        "billed_after": entry.billed_after,
        "audit_event_id": str(entry.audit_entry_id) if entry.audit_entry_id else None,
        "stripe_synced": iso(entry.stripe_synced_at),
    }


def _return_url(account) -> str:
    return f"{settings.PUBLIC_URL}/billing/accounts/{account.id}/return"


class CheckoutStart(Body):
    plan: Annotated[
        Any, checked(lambda value: isinstance(value, str), "plan must be a string.", "invalid_plan")
    ]


class AccountBillingApi(AccountApi):
    """``GET /api/accounts/<id>/billing``."""

    required_permissions = {"GET": "read:billing"}

    def get(self, request, **kwargs):
        return Response(_summary_wire(billing_selectors.billing_summary(self.account)))


class SeatLedgerApi(AccountApi):
    """``GET /api/accounts/<id>/billing/seat_ledger``: each change of the seats, newest first
    (``offset``/``limit`` query parameters)."""

    required_permissions = {"GET": "read:billing"}

    def get(self, request, **kwargs):
        paging = {
            name: int(value) if value.isdigit() else value
            for name, value in request.query_params.items()
            if name in ("offset", "limit")
        }
        entries = paged(paging, billing_selectors.seat_ledger_list(self.account))
        return Response([ledger_entry_wire(entry) for entry in entries])


class CheckoutStartApi(AccountApi):
    """``POST /api/accounts/<id>/billing/checkout`` ``{"plan": "team"}``: the Checkout address to
    send the person to (``url``), or ``url: null`` when the paid subscription changed in place;
    the plan is ``pending`` until the webhook confirms."""

    required_permissions = {"POST": "update:billing"}

    def post(self, request, **kwargs):
        body = self.parse(CheckoutStart)
        started = billing_services.checkout_start(
            account=self.account,
            plan=body.plan,
            actor=request.user,
            success_url=_return_url(self.account) + "?checkout=success",
            cancel_url=_return_url(self.account) + "?checkout=cancelled",
            email=getattr(request.user, "email", "") or "",
        )
        return Response(started, status=201)


class PortalStartApi(AccountApi):
    """``POST /api/accounts/<id>/billing/portal``: a link to Stripe's customer portal."""

    required_permissions = {"POST": "update:billing"}

    def post(self, request, **kwargs):
        return Response(
            billing_services.portal_start(
                account=self.account, actor=request.user, return_url=_return_url(self.account)
            ),
            status=201,
        )


class CheckoutReturnPage(AccountApi):
    """``GET /billing/accounts/<id>/return``: where Checkout sends the person back. Until the signed
    webhook confirms, the account is on its old plan and the page says so and refreshes itself;
    back from a cancelled Checkout (``?checkout=cancelled``) it says nothing changed."""

    required_permissions = {"GET": "read:billing"}

    def get(self, request, **kwargs):
        summary = billing_selectors.billing_summary(self.account)
        pending = summary["pending_plan"]
        name = escape(self.account.name)
        if request.GET.get("checkout") == "cancelled":
            # Checkout was left unpaid: nothing is pending from this visit (waiting would be forever).
            refresh = ""
            message = (
                f"Checkout was cancelled; nothing changed: {name} stays on the "
                f"{escape(summary['plan_name'])} plan."
            )
        elif pending:
            refresh = '<meta http-equiv="refresh" content="3">'
            message = (
                f"Your upgrade of {name} to the {escape(pending.title())} plan is pending until Stripe "
                f"confirms the payment. This page refreshes by itself. {name} stays on the "
                f"{escape(summary['plan_name'])} plan meanwhile."
            )
        else:
            refresh = ""
            message = f"{name} is on the {escape(summary['plan_name'])} plan ({escape(summary['status'])})."
        warnings = "".join(f"<p>{escape(text)}</p>" for text in summary["warnings"])
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'>{refresh}<title>Billing</title></head>"
            f"<body><h1>Billing</h1><p id='billing-status'>{message}</p>{warnings}<p><a href='/'>Back</a></p>"
            "</body></html>"
        )
        return HttpResponse(page, content_type="text/html; charset=utf-8")
