"""Incoming webhooks (Prefect Cloud's feature): their writes, and turning a request to
``/hooks/<slug>`` into events.

Writes (create, update, rotate, delete) run in one transaction each with their audit record
(``webhook.created|updated|rotated|deleted``). Creating one counts against the account's plan
(``billing.entitlements.check_webhook``), with the account row locked so two creations cannot both
take the last slot.

A request (``webhook_receive``) is answered as Cloud answers: 204 when its events are stored, 404
for an unknown or disabled slug (nothing else is said about it), 429 with ``Retry-After`` past the
webhook's rate, 401 when the signature or the service account's key is missing or wrong, and 400
when the template renders to something that is not events. Every refusal after the slug is known is
also an event in the webhook's workspace, ``prefect-cloud.webhook.failed``, with the reason, so the
workspace sees why its sender's calls go nowhere. The events a request makes are stored through
``events_ingest`` (the path ``/events/in`` takes), so triggers see them, and each names the webhook
as a related resource (``prefect-cloud.webhook.<id>``, role ``webhook``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError

from accounts.api_keys.selectors import api_key_can_act, api_key_find
from accounts.selectors import service_account_get
from audit import events
from billing.entitlements import ensure_webhook
from billing.selectors import ensure_writes_allowed
from core.errors import NotFound, PaymentRequired, Unprocessable
from orchestration.events.schemas import EventIn
from orchestration.events.services import events_ingest, object_event_record_on_commit
from orchestration.models import SignatureScheme, Webhook
from orchestration.persistence.block_data import decrypt_data, encrypt_data
from orchestration.schemas.templates import TemplateRenderError, template_render
from orchestration.schemas.webhooks import (
    DEFAULT_HEADERS,
    WebhookCreate,
    WebhookPartialUpdate,
    WebhookUpdate,
)
from orchestration.services import auditing
from tenants.models import Account, Workspace
from tenants.rls import across_workspaces

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 100
#: How much of a refused request's body its ``failed`` event keeps.
FAILED_BODY_PREVIEW = 2000


def _slug() -> str:
    return secrets.token_urlsafe(16)


# --- writes -----------------------------------------------------------------------------------------


_AUDITED = ("name", "description", "enabled", "template", "service_account_id", "signature_scheme",
            "signature_header")  # fmt: skip


def _snapshot(webhook: Webhook) -> dict:
    data = {name: getattr(webhook, name) for name in _AUDITED}
    data["service_account_id"] = str(webhook.service_account_id) if webhook.service_account_id else None
    data["has_signature_secret"] = bool(webhook.secret)  # the secret itself is never recorded
    return data


def _check_service_account(workspace: Workspace, service_account_id: uuid.UUID | None) -> None:
    if service_account_id is None:
        return
    if service_account_get(account=workspace.account, service_account_id=service_account_id) is None:
        raise Unprocessable("Service account not found in this account.")


def _apply(webhook: Webhook, changes: dict[str, Any]) -> None:
    secret = changes.pop("signature_secret", None)
    for name, value in changes.items():
        setattr(webhook, name, value)
    if secret:
        webhook.secret = encrypt_data({"secret": secret})
    if webhook.signature_scheme == SignatureScheme.NONE:
        webhook.secret = ""
    elif not webhook.secret:
        raise Unprocessable(f"signature_scheme {webhook.signature_scheme!r} needs a signature_secret")


def webhook_create(*, workspace: Workspace, data: WebhookCreate, actor=None) -> Webhook:
    _check_service_account(workspace, data.service_account_id)
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=workspace.account_id)
        with across_workspaces():  # the plan limits the whole account
            used = Webhook.objects.unscoped().filter(workspace__account_id=account.pk).count()
        ensure_webhook(account, webhooks_used=used)
        webhook = Webhook(workspace_id=workspace.pk, slug=_slug())
        _apply(webhook, data.model_dump())
        webhook.save()
        auditing.record(
            events.WEBHOOK_CREATED, target=webhook, actor=actor, after=_snapshot(webhook), workspace=workspace
        )
    return webhook


def _locked(webhook_id: uuid.UUID) -> Webhook:
    webhook = Webhook.objects.select_for_update().filter(id=webhook_id).first()
    if webhook is None:
        raise NotFound("Webhook not found.")
    return webhook


def webhook_update(
    *, workspace: Workspace, webhook_id: uuid.UUID, data: WebhookUpdate | WebhookPartialUpdate, actor=None
) -> Webhook:
    """PUT replaces every field (a scheme keeps its stored secret unless a new one is sent); PATCH
    only those the body sets. Disabling is ``enabled: false``."""
    changes = data.model_dump(exclude_unset=isinstance(data, WebhookPartialUpdate))
    if "service_account_id" in changes:
        _check_service_account(workspace, changes["service_account_id"])
    with transaction.atomic():
        webhook = _locked(webhook_id)
        before = _snapshot(webhook)
        _apply(webhook, changes)
        webhook.save()
        auditing.record_changes(
            events.WEBHOOK_UPDATED, target=webhook, actor=actor, before=before, after=_snapshot(webhook)
        )
    return webhook


def webhook_rotate(*, webhook_id: uuid.UUID, actor=None) -> Webhook:
    """A new slug: the old URL stops answering at once; the configuration stays."""
    with transaction.atomic():
        webhook = _locked(webhook_id)
        webhook.slug = _slug()
        webhook.save(update_fields=["slug", "updated"])
        auditing.record(events.WEBHOOK_ROTATED, target=webhook, actor=actor)
    return webhook


def webhook_delete(*, webhook_id: uuid.UUID, actor=None) -> None:
    with transaction.atomic():
        webhook = _locked(webhook_id)
        before = _snapshot(webhook)
        webhook.delete()
        webhook.id = webhook_id  # Django clears the pk of a deleted instance
        auditing.record(events.WEBHOOK_DELETED, target=webhook, actor=actor, before=before)


# --- receiving --------------------------------------------------------------------------------------


@dataclass
class WebhookAnswer:
    status: int
    detail: str = ""
    retry_after: int | None = None
    event_ids: list[str] = field(default_factory=list)


@dataclass
class WebhookRequest:
    """What the receiver passes on of an HTTP request."""

    method: str
    headers: dict[str, str]  # names lower-cased
    query: dict[str, str]
    body: bytes
    content_type: str = ""


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


def _retry_after(webhook_id: uuid.UUID) -> int | None:
    """A fixed one-minute window per webhook in the cache (Redis across processes when
    ``REDIS_URL`` is set, else this process's memory): the seconds until the window ends when the
    request is one too many, else None. A cache that fails lets the request through."""
    limit = settings.WEBHOOK_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return None
    now = time.time()
    key = f"webhook-rate:{webhook_id}:{int(now // 60)}"
    try:
        cache.add(key, 0, timeout=120)
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=120)
        count = 1
    except Exception:  # noqa: BLE001 - a lost cache must not stop every webhook
        logger.warning("Webhook rate limit not counted: the cache failed", exc_info=True)
        return None
    if count <= limit:
        return None
    return max(1, int(60 - now % 60) + 1)


def _secret(webhook: Webhook) -> bytes:
    return decrypt_data(webhook.secret)["secret"].encode()


def _authenticate(webhook: Webhook, request: WebhookRequest) -> None:
    if webhook.service_account_id is not None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = api_key_find(token.strip()) if scheme.lower() == "bearer" and token else None
        if (
            key is None
            or key.service_account_id != webhook.service_account_id
            or not api_key_can_act(key, timezone.now())
        ):
            raise _Refused(401, "The request carries no valid key of the webhook's service account.")
    if webhook.signature_scheme == SignatureScheme.NONE:
        return
    header = (webhook.signature_header or DEFAULT_HEADERS[webhook.signature_scheme]).lower()
    presented = request.headers.get(header, "")
    if not presented:
        raise _Refused(401, f"The request has no {header} header.")
    secret = _secret(webhook)
    if webhook.signature_scheme == SignatureScheme.SHARED_SECRET:
        expected = secret
    else:
        digest = hmac.new(secret, request.body, hashlib.sha256).hexdigest()
        expected = digest.encode()
        presented = presented.removeprefix("sha256=")
    if not hmac.compare_digest(presented.strip().encode(), expected):
        raise _Refused(401, f"The {header} header does not match.")


def _context(request: WebhookRequest) -> dict[str, Any]:
    text = request.body.decode("utf-8", errors="replace")
    content_type = request.content_type.split(";", 1)[0].strip().lower()
    body: Any = text
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            raise _Refused(400, "The body is not valid JSON.") from None
    elif content_type == "application/x-www-form-urlencoded":
        body = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(text, keep_blank_values=True).items()}
    return {
        "method": request.method,
        "headers": request.headers,
        "query": request.query,
        "body": body,
        "raw_body": text,
    }


def _events(webhook: Webhook, request: WebhookRequest) -> list[dict[str, Any]]:
    try:
        rendered = template_render(webhook.template, _context(request))
    except TemplateRenderError as error:
        raise _Refused(400, str(error)) from None
    try:
        parsed = json.loads(rendered)
    except ValueError as error:
        raise _Refused(400, f"The template did not render to JSON: {error}") from None
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items or len(items) > MAX_EVENTS_PER_REQUEST:
        raise _Refused(400, f"The template must render to 1 to {MAX_EVENTS_PER_REQUEST} events.")
    related = {
        "prefect.resource.id": f"prefect-cloud.webhook.{webhook.id}",
        "prefect.resource.name": webhook.name,
        "prefect.resource.role": "webhook",
    }
    now = timezone.now().isoformat()
    result = []
    for item in items:
        if not isinstance(item, dict):
            raise _Refused(400, "Each rendered event must be a JSON object.")
        item = {"id": str(uuid.uuid4()), "occurred": now, **item}
        existing = item.get("related") or []
        if not isinstance(existing, list):
            raise _Refused(400, "The template rendered an invalid event: related must be a list.")
        item["related"] = [*existing, related]
        try:
            event = EventIn.model_validate(item)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}"
                for e in error.errors(include_url=False, include_context=False, include_input=False)
            )
            raise _Refused(400, f"The template rendered an invalid event: {problems}") from None
        result.append(event.model_dump(mode="json"))
    return result


def _record_failure(webhook: Webhook, request: WebhookRequest, reason: str) -> None:
    object_event_record_on_commit(
        workspace_id=webhook.workspace_id,
        event="prefect-cloud.webhook.failed",
        resource_id=f"prefect-cloud.webhook.{webhook.id}",
        resource_name=webhook.name,
        payload={
            "reason": reason,
            "method": request.method,
            "content_type": request.content_type,
            "body": request.body[:FAILED_BODY_PREVIEW].decode("utf-8", errors="replace"),
        },
    )


def webhook_receive(*, slug: str, request: WebhookRequest) -> WebhookAnswer:
    webhook = Webhook.objects.unscoped().select_related("workspace__account").filter(slug=slug).first()
    if webhook is None or not webhook.enabled:
        return WebhookAnswer(404, "Not Found")
    try:
        # A suspended account's orchestration writes are all refused, events from its webhooks too.
        ensure_writes_allowed(webhook.workspace.account)
    except PaymentRequired as error:
        return WebhookAnswer(402, error.message)
    retry_after = _retry_after(webhook.id)
    if retry_after is not None:
        return WebhookAnswer(429, "Too many requests to this webhook.", retry_after=retry_after)
    try:
        _authenticate(webhook, request)
        items = _events(webhook, request)
    except _Refused as refused:
        _record_failure(webhook, request, refused.reason)
        return WebhookAnswer(refused.status, refused.reason)
    events_ingest(workspace_id=webhook.workspace_id, events=items)
    return WebhookAnswer(204, event_ids=[item["id"] for item in items])
