"""Billing's state: an account's subscription, the Stripe events received (each once), and the
seat ledger. Written only by ``billing.services``; read through ``billing.selectors``."""

from __future__ import annotations

import uuid

from django.db import models


class BillingStatus(models.TextChoices):
    """``Account.billing_status``. The phases of ``past_due`` (grace, restricted, suspended) follow
    from ``billing_status_since`` and the settings; see ``billing.selectors.billing_phase``."""

    ACTIVE = "active"
    PAST_DUE = "past_due"  # a payment failed; grace, then new work refused, then suspended
    READ_ONLY = "read_only"  # cancelled while the account does not fit the free plan


class Door(models.TextChoices):
    """Where a seat came in or left by."""

    INVITATION = "invitation", "invitation sent or revoked"
    INVITATION_ACCEPTED = "invitation_accepted", "invitation accepted"
    SSO = "sso", "SSO just-in-time"
    SCIM = "scim", "SCIM provisioning"
    API = "api", "account API"
    CONSOLE = "console", "console"
    OPERATOR = "operator", "operator"
    SYSTEM = "system", "system"


class Subscription(models.Model):
    """One per account once billing has spoken about it (a Checkout started, an operator set a plan
    with a Stripe subscription)."""

    account = models.OneToOneField("tenants.Account", on_delete=models.CASCADE, related_name="subscription")
    stripe_customer_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    # Stripe's own status of the subscription (active, past_due, canceled, incomplete, …).
    stripe_status = models.CharField(max_length=32, blank=True, default="")
    # A Checkout started for this plan: the account stays on its plan until the webhook confirms.
    pending_plan = models.CharField(max_length=32, blank=True, default="")
    pending_since = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # The quantity billed (sent to Stripe) and the period's high-water mark of seats used: within
    # a period the billed quantity never drops below it.
    seats_billed = models.PositiveIntegerField(default=0)
    seats_high_water = models.PositiveIntegerField(default=0)
    # Why the account is read-only (a cancellation it did not fit the free plan for).
    read_only_reason = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~models.Q(stripe_customer_id=""),
                name="billing_subscription_unique_customer",
            ),
        ]

    def __str__(self) -> str:
        return f"subscription of {self.account_id}"


class StripeEvent(models.Model):
    """A webhook delivery, stored once by Stripe's event id (a replay finds it and does nothing)."""

    id = models.CharField(primary_key=True, max_length=255)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received = models.DateTimeField(auto_now_add=True)
    processed = models.DateTimeField(null=True, blank=True)
    account = models.ForeignKey(
        "tenants.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"{self.id} ({self.type})"


class SeatLedgerEntry(models.Model):
    """One change of an account's seats: who, when, why, through which door, the seats used and
    the quantity billed before and after, and the audit event that records it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="seat_ledger")
    occurred = models.DateTimeField(auto_now_add=True)
    actor_kind = models.CharField(max_length=20)
    actor_label = models.CharField(max_length=254)
    door = models.CharField(max_length=32, choices=Door.choices)
    reason = models.CharField(max_length=255)
    seats_before = models.PositiveIntegerField()
    seats_after = models.PositiveIntegerField()
    billed_before = models.PositiveIntegerField()
    billed_after = models.PositiveIntegerField()
    # The audit record's id (a value, not a constraint: the audit log keeps its own retention).
    audit_entry_id = models.UUIDField(null=True, blank=True)
    # When Stripe took the billed quantity (None: nothing to send, or not sent yet).
    stripe_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred"]
        indexes = [models.Index(fields=["account", "-occurred"], name="billing_seat_ledger_account")]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.seats_before} → {self.seats_after} ({self.door})"
