"""Incoming webhooks as Prefect Cloud's API takes and answers them (the ``prefect_webhook``
Terraform resource's fields: name, description, enabled, template, service_account_id; the slug is
assigned, never set), plus this server's optional signature check.

A template is checked when it is saved: Jinja's sandbox must parse it within Prefect's loop limits
(``templates.template_check``), and a template with no Jinja in it must already be the JSON of an
event or a list of events, since nothing in a request could change it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestration.schemas.base import iso
from orchestration.schemas.templates import maybe_template, template_error

MAX_TEMPLATE = 64 * 1024
Scheme = Literal["none", "shared-secret", "hmac-sha256"]
#: The header a scheme reads when the webhook names none.
DEFAULT_HEADERS = {"shared-secret": "X-Webhook-Secret", "hmac-sha256": "X-Webhook-Signature"}


def _template(value: str) -> str:
    error = template_error(value)
    if error is not None:
        raise ValueError(f"Invalid template: {error}")
    if not maybe_template(value):
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"Invalid template: a static template must be JSON ({exc})") from None
        if not isinstance(parsed, dict | list):
            raise ValueError("Invalid template: it must render to an event object or a list of events")
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookFields(_Body):
    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=5000)
    enabled: bool = True
    template: str = Field(min_length=1, max_length=MAX_TEMPLATE)
    service_account_id: uuid.UUID | None = None
    signature_scheme: Scheme = "none"
    signature_header: str = Field(default="", max_length=100, pattern=r"^[A-Za-z0-9-]*$")
    # Write-only: stored encrypted, never answered.
    signature_secret: str | None = Field(default=None, min_length=16, max_length=512)

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        return _template(value)


class WebhookCreate(WebhookFields):
    @model_validator(mode="after")
    def _secret_with_scheme(self) -> WebhookCreate:
        if self.signature_scheme != "none" and not self.signature_secret:
            raise ValueError(f"signature_scheme {self.signature_scheme!r} needs a signature_secret")
        return self


class WebhookUpdate(WebhookCreate):
    """PUT: the whole webhook (a scheme keeps its stored secret when none is sent)."""

    @model_validator(mode="after")
    def _secret_with_scheme(self) -> WebhookUpdate:
        return self


class WebhookPartialUpdate(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=5000)
    enabled: bool | None = None
    template: str | None = Field(default=None, min_length=1, max_length=MAX_TEMPLATE)
    service_account_id: uuid.UUID | None = None
    signature_scheme: Scheme | None = None
    signature_header: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9-]*$")
    signature_secret: str | None = Field(default=None, min_length=16, max_length=512)

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        return None if value is None else _template(value)


class WebhookFilter(BaseModel):
    model_config = ConfigDict(extra="ignore")

    class _Names(BaseModel):
        any_: list[str] | None = None

    class _Ids(BaseModel):
        any_: list[uuid.UUID] | None = None

    class _Webhooks(BaseModel):
        model_config = ConfigDict(extra="ignore")
        name: WebhookFilter._Names | None = None
        id: WebhookFilter._Ids | None = None

    webhooks: _Webhooks | None = None
    limit: int = Field(default=200, ge=0, le=200)
    offset: int = Field(default=0, ge=0)


def webhook_document(webhook, *, account_id: uuid.UUID | None = None) -> dict[str, Any]:
    """A webhook in Cloud's response shape (plus the signature scheme; the secret never)."""
    return {
        "id": str(webhook.id),
        "created": iso(webhook.created),
        "updated": iso(webhook.updated),
        "name": webhook.name,
        "description": webhook.description,
        "enabled": webhook.enabled,
        "template": webhook.template,
        "slug": webhook.slug,
        "account_id": str(account_id) if account_id else None,
        "workspace_id": str(webhook.workspace_id),
        "service_account_id": str(webhook.service_account_id) if webhook.service_account_id else None,
        "signature_scheme": webhook.signature_scheme,
        "signature_header": webhook.signature_header or DEFAULT_HEADERS.get(webhook.signature_scheme, ""),
        "has_signature_secret": bool(webhook.secret),
    }
