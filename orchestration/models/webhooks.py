"""Incoming webhooks (Prefect Cloud's ``/webhooks``): a workspace's URL at ``/hooks/<slug>`` whose
Jinja template turns an HTTP request into Prefect events.

The slug is the only thing a caller knows, so it is unique across the installation (the receiver
finds the workspace by it) and unguessable (``secrets.token_urlsafe``). The optional shared secret
is stored as a Fernet token (``persistence.block_data``), never in plain text, and never answered.
"""

from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class SignatureScheme(models.TextChoices):
    NONE = "none", "None"
    SHARED_SECRET = "shared-secret", "Shared secret in a header"
    HMAC_SHA256 = "hmac-sha256", "HMAC-SHA256 of the body in a header"


class Webhook(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    description = models.TextField(default="", blank=True)
    enabled = models.BooleanField(default=True)
    template = models.TextField()
    # A service account whose key a caller must present (``Authorization: Bearer``), as Cloud does.
    service_account_id = models.UUIDField(null=True, blank=True)
    slug = models.CharField(max_length=64, unique=True)
    signature_scheme = models.CharField(
        max_length=16, choices=SignatureScheme.choices, default=SignatureScheme.NONE
    )
    signature_header = models.CharField(max_length=100, default="", blank=True)
    secret = models.TextField(default="", blank=True)  # a Fernet token, "" when there is none
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "name"], name="webhook_ws_name")]

    def __str__(self) -> str:
        return self.name
