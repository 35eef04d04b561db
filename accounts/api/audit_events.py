"""``audit_events``: the account's audit trail."""

from __future__ import annotations

from django.db.models import Q
from rest_framework.response import Response

from accounts.api.base import AccountApi, body_datetime, body_uuid
from core.errors import Unprocessable


class AuditEventsApi(AccountApi):
    """``GET audit_events``: the account's audit trail, newest first, with filters (``event``,
    ``actor``, ``workspace``, ``since``, ``until``) and cursor paging (``limit`` ≤ 200, ``cursor``
    from the previous page's ``next_cursor``). Each event carries its place in the hash chain."""

    required_permissions = {"GET": "read:audit_event"}

    def get(self, request, **kwargs):
        from audit.export import entry_record
        from audit.models import AuditLogEntry
        from billing.entitlements import ensure_feature

        ensure_feature(self.account, "audit_log")
        params = request.query_params
        entries = AuditLogEntry.objects.filter(chain=self.account.pk, sequence__gt=0)
        if params.get("event"):
            entries = entries.filter(api_name=params["event"])
        if params.get("workspace"):
            entries = entries.filter(workspace_ref=body_uuid(params["workspace"], "workspace"))
        if params.get("actor"):
            actor = body_uuid(params["actor"], "actor")
            entries = entries.filter(Q(actor_user_id=actor) | Q(actor_service_account_id=actor))
        if params.get("since"):
            entries = entries.filter(occurred__gte=body_datetime(params["since"], "since"))
        if params.get("until"):
            entries = entries.filter(occurred__lt=body_datetime(params["until"], "until"))
        if params.get("cursor"):
            try:
                before = int(params["cursor"])
            except ValueError:
                raise Unprocessable("cursor is not one this API gave.", code="invalid_cursor") from None
            entries = entries.filter(sequence__lt=before)
        try:
            limit = int(params.get("limit", 50))
        except ValueError:
            raise Unprocessable("limit must be an integer.", code="invalid_paging") from None
        if not 1 <= limit <= 200:
            raise Unprocessable("limit must be between 1 and 200.", code="invalid_paging")
        page = list(entries.order_by("-sequence")[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        return Response(
            {
                "events": [entry_record(entry) for entry in page],
                "next_cursor": str(page[-1].sequence) if more else None,
            }
        )
