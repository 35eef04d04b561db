"""Incoming webhooks (Prefect Cloud's feature): their writes, and turning a request to
``/hooks/<slug>`` into events.

Writes (create, update, rotate, delete) run in one transaction each with their audit record
(``webhook.created|updated|rotated|deleted``). Creating one counts against the account's plan
(``billing.entitlements.check_webhook``), with the account row locked so two creations cannot both
take the last slot.

A request (``webhook_receive``) is answered as Cloud answers: 204 when its events are stored, 404
for an unknown or disabled slug (nothing else is said about it), 402 while the account is suspended,
429 with ``Retry-After`` past the webhook's rate, 403 for a webhook its account's plan no longer
covers (a downgrade: the plan serves the account's oldest webhooks, as many as creating allows), 401
when the signature or the service account's key is missing or wrong, 400 when the body is not the
JSON it says it is or the template renders to something that is not events that can be stored (the
checks of ``core.parsers``, as ``/events/in`` makes them), and 429 with ``Retry-After`` when the
account's logs + events budget of the minute is spent (each event a request makes is charged to it,
as ``/events/in`` charges it). Client input never makes a 500. Every refusal after the slug is known
but the account's (402, 429) is also an event in the webhook's workspace,
``prefect-cloud.webhook.failed``, with the reason and a preview of the body (NUL and lone surrogates
replaced, so it can always be stored), so the workspace sees why its sender's calls go nowhere;
nothing else of a refused request is stored. The events a request makes are stored through
``events_ingest`` (the path ``/events/in`` takes), so triggers see them, and each names the webhook
as a related resource (``prefect-cloud.webhook.<id>``, role ``webhook``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.cache import cache
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone
from pydantic import ValidationError

from access.limits import Bucket, RateLimited, charge
from accounts.api_keys.selectors import api_key_can_act, api_key_find
from accounts.selectors import service_account_get
from audit import events
from billing.entitlements import check_webhook, ensure_webhook, plan_for
from billing.selectors import ensure_writes_allowed
from core.errors import NotFound, PaymentRequired, Unprocessable
from core.parsers import BadJson, NotJson, loads, storable, suspect, unrenderable
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
from orchestration.selectors.webhooks import webhooks_created_before
from orchestration.services import auditing
from tenants.models import Account, Workspace
from tenants.rls import across_workspaces

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 100
#: How much of a refused request's body its ``failed`` event keeps.
FAILED_BODY_PREVIEW = 2000
#: What ``_slug`` makes (and no more): anything else is no webhook's, answered 404 without a query.
_SLUG_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")


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


def _json_body(text: str) -> Any:
    """A JSON body, read as every client's JSON is (``core.parsers``): what could not be stored
    and read back, or would exhaust the parser (nesting beyond ``MAX_DEPTH``), is refused. Text
    without anything of the kind (``suspect``) takes the plain parser."""
    if not text.strip():
        return None
    try:
        return loads(text) if suspect(text) else json.loads(text)
    except NotJson:
        raise _Refused(400, "The body is not valid JSON.") from None
    except BadJson as error:
        raise _Refused(400, f"The body is JSON this server does not take: {error}.") from None
    except ValueError:
        raise _Refused(400, "The body is not valid JSON.") from None


def _context(request: WebhookRequest) -> dict[str, Any]:
    text = request.body.decode("utf-8", errors="replace")
    content_type = request.content_type.split(";", 1)[0].strip().lower()
    body: Any = text
    if content_type == "application/json" or content_type.endswith("+json"):
        body = _json_body(text)
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
    # What cannot be stored (a NUL from a form, the query or a raw body through ``tojson``, a lone
    # surrogate, nesting that would exhaust the parser) is refused here, before anything is stored,
    # as ``/events/in`` refuses it. A lone surrogate may also be in the text itself (Jinja's
    # ``'\ud800'``), which the parser would report as text that is not UTF-8.
    cannot = "The template rendered an event that cannot be stored"
    problem = unrenderable(rendered)
    if problem is not None:
        raise _Refused(400, f"{cannot}: {problem}.")
    try:
        parsed = loads(rendered)
    except NotJson as error:
        raise _Refused(400, f"The template did not render to JSON: {error}") from None
    except BadJson as error:
        raise _Refused(400, f"{cannot}: {error}.") from None
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
            "reason": storable(reason),
            "method": storable(request.method),
            "content_type": storable(request.content_type),
            "body": storable(request.body[:FAILED_BODY_PREVIEW].decode("utf-8", errors="replace")),
        },
    )


def _check_plan(webhook: Webhook) -> None:
    """Creating a webhook asks the plan (``check_webhook``); so does each request, for a plan that
    changed since (a downgrade, contract limits): the account's oldest webhooks, as many as the
    plan allows, are served, the others refused until it is upgraded or older ones are deleted."""
    account = webhook.workspace.account
    plan = plan_for(account)
    if plan.max_webhooks is None:  # unlimited: no query
        return
    if check_webhook(account, webhooks_used=webhooks_created_before(webhook)):
        return
    if plan.max_webhooks == 0:
        raise _Refused(403, f"The {plan.name} plan does not include webhooks.")
    raise _Refused(
        403,
        f"The {plan.name} plan allows {plan.max_webhooks} webhooks and the account's older ones take "
        "them: this one receives nothing until the plan is upgraded or older webhooks are deleted.",
    )


def webhook_receive(*, slug: str, request: WebhookRequest) -> WebhookAnswer:
    if not _SLUG_SHAPE.fullmatch(slug):
        return WebhookAnswer(404, "Not Found")
    webhook = Webhook.objects.unscoped().select_related("workspace__account").filter(slug=slug).first()
    if webhook is None or not webhook.enabled:
        return WebhookAnswer(404, "Not Found")
    account = webhook.workspace.account
    try:
        # A suspended account's orchestration writes are all refused, events from its webhooks too.
        ensure_writes_allowed(account)
    except PaymentRequired as error:
        return WebhookAnswer(402, error.message)
    retry_after = _retry_after(webhook.id)
    if retry_after is not None:
        return WebhookAnswer(429, "Too many requests to this webhook.", retry_after=retry_after)
    try:
        _check_plan(webhook)
        _authenticate(webhook, request)
        items = _events(webhook, request)
    except _Refused as refused:
        _record_failure(webhook, request, refused.reason)
        return WebhookAnswer(refused.status, refused.reason)
    try:
        # Each event is charged to the account's logs + events budget, as ``/events/in`` charges it.
        charge(account, Bucket.LOGS_EVENTS, len(items))
    except RateLimited as limited:
        logger.info("Webhook %s: the account's logs + events budget is spent", webhook.id)
        return WebhookAnswer(429, str(limited.detail), retry_after=int(limited.wait or 1))
    try:
        events_ingest(workspace_id=webhook.workspace_id, events=items)
    except (DataError, IntegrityError):
        # The last belt under the checks above: the batch's transaction rolled back, nothing of it
        # is stored; the workspace is told, the sender gets a 400, never a 500.
        logger.warning("Webhook %s: its rendered events could not be stored", webhook.id, exc_info=True)
        reason = "The template rendered events that cannot be stored."
        _record_failure(webhook, request, reason)
        return WebhookAnswer(400, reason)
    return WebhookAnswer(204, event_ids=[item["id"] for item in items])
