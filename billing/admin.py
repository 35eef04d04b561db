"""Billing in the Django admin, for platform operators: subscriptions (searchable by account and
Stripe ids), the Stripe events received and the seat ledger, both read-only (they are records)."""

from __future__ import annotations

from django.contrib import admin

from billing.models import SeatLedgerEntry, StripeEvent, Subscription


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("account", "stripe_status", "pending_plan", "seats_billed", "current_period_end")
    list_filter = ("stripe_status",)
    search_fields = ("account__name", "account__handle", "stripe_customer_id", "stripe_subscription_id")
    list_select_related = ("account",)
    readonly_fields = ("created", "updated")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "type", "account", "received", "processed")
    list_filter = ("type",)
    search_fields = ("id", "account__handle")


@admin.register(SeatLedgerEntry)
class SeatLedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "account",
        "occurred",
        "door",
        "seats_before",
        "seats_after",
        "billed_after",
        "actor_label",
    )
    list_filter = ("door",)
    search_fields = ("account__handle", "actor_label", "reason")
    list_select_related = ("account",)
