"""Reads of a workspace's incoming webhooks."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from core.errors import NotFound
from orchestration.models import Webhook
from orchestration.schemas.webhooks import WebhookFilter
from tenants.rls import across_workspaces


def webhook_get(webhook_id: uuid.UUID) -> Webhook:
    webhook = Webhook.objects.filter(id=webhook_id).first()
    if webhook is None:
        raise NotFound("Webhook not found.")
    return webhook


def webhook_list(flt: WebhookFilter) -> QuerySet:
    rows = Webhook.objects.all()
    if flt.webhooks is not None:
        if flt.webhooks.name is not None and flt.webhooks.name.any_ is not None:
            rows = rows.filter(name__in=flt.webhooks.name.any_)
        if flt.webhooks.id is not None and flt.webhooks.id.any_ is not None:
            rows = rows.filter(id__in=flt.webhooks.id.any_)
    return rows.order_by("name", "id")[flt.offset : flt.offset + flt.limit]


def webhooks_created_before(webhook: Webhook) -> int:
    """How many of the account's webhooks, in every workspace, were made before ``webhook`` (ties
    broken by id): the receiver's plan check, which serves the oldest as many as the plan allows."""
    with across_workspaces():  # the plan limits the whole account
        return (
            Webhook.objects.unscoped()
            .filter(workspace__account_id=webhook.workspace.account_id)
            .filter(Q(created__lt=webhook.created) | Q(created=webhook.created, id__lt=webhook.id))
            .count()
        )
