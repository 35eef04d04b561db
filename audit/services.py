"""Writing the audit trail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.actors import actor_kind, actor_label
from audit.context import current_request_context
from audit.models import AuditLogEntry
from audit.registry import AuditEventType, registry


def _target_fields(target) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    meta = getattr(target, "_meta", None)
    target_type = f"{meta.app_label}.{meta.model_name}" if meta else type(target).__name__.lower()
    return target_type, str(getattr(target, "pk", "")), str(target)[:254]


def audit_record(
    *,
    event: AuditEventType | str,
    actor,
    account=None,
    workspace=None,
    target=None,
    payload: dict[str, Any] | None = None,
) -> AuditLogEntry:
    """Record ``event``. Call it inside the service's transaction so the record and the change
    commit or roll back together. Request facts (IP, user agent, request id) come from the request
    context the middleware sets."""
    if isinstance(event, str):
        event = registry.get(event)
    if workspace is not None and account is None:
        account = workspace.account
    payload = dict(payload or {})
    kind = actor_kind(actor)
    label = actor_label(actor)
    target_type, target_id, target_label = _target_fields(target)
    context = current_request_context()
    message = event.render(
        actor=label,
        target=target_label,
        workspace=str(workspace) if workspace is not None else "",
        **{key: value for key, value in payload.items() if key not in {"actor", "target", "workspace"}},
    )
    return AuditLogEntry.objects.create(
        occurred=timezone.now(),
        event_id=event.id,
        api_name=event.api_name,
        account=account,
        workspace=workspace,
        account_ref=account.pk if account is not None else None,
        workspace_ref=workspace.pk if workspace is not None else None,
        actor_kind=kind,
        actor_user=actor if kind == "user" else None,
        actor_service_account=actor if kind == "service_account" else None,
        actor_label=label[:254],
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        ip=context.ip,
        user_agent=context.user_agent,
        request_id=context.request_id,
        message=message,
        payload=payload,
    )


def audit_purge_expired(*, now=None) -> int:
    """Delete records older than each account's plan retention. Records without an account (a
    user's own keys) are kept for the longest retention of any plan."""
    from billing.plans import PLANS
    from tenants.models import Account

    now = now or timezone.now()
    deleted = 0
    for plan in PLANS.values():
        cutoff = now - timedelta(days=plan.audit_log_retention_days)
        account_ids = Account.objects.filter(plan=plan.key).values("id")
        with transaction.atomic():
            count, _ = AuditLogEntry.objects.filter(account_ref__in=account_ids, occurred__lt=cutoff).delete()
        deleted += count
    longest = max(plan.audit_log_retention_days for plan in PLANS.values())
    count, _ = AuditLogEntry.objects.filter(
        account_ref__isnull=True, occurred__lt=now - timedelta(days=longest)
    ).delete()
    return deleted + count
