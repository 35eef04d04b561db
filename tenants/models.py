"""Account (the tenant) and its workspaces."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Lower

from tenants.handles import HANDLE_MAX_LENGTH, handle_validator


class Account(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    handle = models.CharField(max_length=HANDLE_MAX_LENGTH, unique=True, validators=[handle_validator])
    plan = models.CharField(max_length=32)
    # Limits an operator agreed for this account on a plan sold by contract (Enterprise): keys of
    # billing.plans.CONTRACT_LIMITS; a key absent keeps the plan's figure. Self-serve plans ignore it.
    plan_limits = models.JSONField(default=dict, blank=True)
    # Account-wide preferences (e.g. SSO enforcement, session lifetime); their schema lives with
    # the features that read them.
    settings = models.JSONField(default=dict, blank=True)
    # The account's standing with billing, kept with the account (like its plan) so the hot path
    # that starts new work reads it from the row it already has. Written only by billing's services;
    # billing.selectors says what it allows (a grace period, then new work refused, then suspension).
    billing_status = models.CharField(max_length=16, default="active")
    billing_status_since = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(handle=Lower("handle")), name="account_handle_lowercase"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.handle})"


class Workspace(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="workspaces")
    name = models.CharField(max_length=200)
    handle = models.CharField(max_length=HANDLE_MAX_LENGTH, validators=[handle_validator])
    description = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "handle"], name="workspace_unique_handle_per_account"),
            models.UniqueConstraint(fields=["account", "name"], name="workspace_unique_name_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.account.handle}/{self.handle}"
