"""API keys: ``pnu_`` for people, ``pnb_`` for service accounts.

A key reads ``<prefix>_<lookup id><secret>``: the 12-character lookup id is not secret and finds the
row; the 44-character secret (base62, > 256 bits) is never stored, only the SHA-256 of the whole key.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class ApiKeyPrefix(models.TextChoices):
    USER = "pnu", "User key"
    SERVICE_ACCOUNT = "pnb", "Service-account key"


class ApiKey(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=3, choices=ApiKeyPrefix.choices)
    lookup_id = models.CharField(max_length=12, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    user = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    service_account = models.ForeignKey(
        "accounts.ServiceAccount", null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    # A key may be scoped down to some of its owner's workspace scopes (never beyond them); None
    # means everything its owner may do.
    scopes = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(prefix="pnu", user__isnull=False, service_account__isnull=True)
                    | models.Q(prefix="pnb", user__isnull=True, service_account__isnull=False)
                ),
                name="api_key_owner_matches_prefix",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display})"

    @property
    def display(self) -> str:
        """What may be shown of a key after its creation: the prefix and the lookup id."""
        return f"{self.prefix}_{self.lookup_id}…"

    @property
    def owner(self):
        return self.user if self.prefix == ApiKeyPrefix.USER else self.service_account

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now
