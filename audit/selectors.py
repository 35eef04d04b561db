"""Reads of the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Q

from audit.models import AuditChainVerification, AuditLogEntry


def audit_event_page(
    *,
    chain: uuid.UUID,
    limit: int,
    api_name: str | None = None,
    workspace_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_sequence: int | None = None,
    target: str | None = None,
) -> tuple[list[AuditLogEntry], bool]:
    """A page of one chain's events, newest first, with the filters given: ``(entries, more)``,
    ``more`` saying whether older entries match too. ``target``: the target's id or its label.
    Keyset paging on the chain's sequence (unique per chain): no count, no offset."""
    entries = AuditLogEntry.objects.filter(chain=chain, sequence__gt=0)
    if api_name:
        entries = entries.filter(api_name=api_name)
    if workspace_id is not None:
        entries = entries.filter(workspace_ref=workspace_id)
    if actor_id is not None:
        entries = entries.filter(Q(actor_user_id=actor_id) | Q(actor_service_account_id=actor_id))
    if since is not None:
        entries = entries.filter(occurred__gte=since)
    if until is not None:
        entries = entries.filter(occurred__lt=until)
    if target:
        entries = entries.filter(Q(target_id=target) | Q(target_label=target))
    if before_sequence is not None:
        entries = entries.filter(sequence__lt=before_sequence)
    page = list(entries.order_by("-sequence")[: limit + 1])
    return page[:limit], len(page) > limit


def audit_chain_verification_get(*, chain: uuid.UUID) -> AuditChainVerification | None:
    """The last walk of ``chain`` (hourly, or an account's "verify now"), or None before the first."""
    return AuditChainVerification.objects.filter(pk=chain).first()
