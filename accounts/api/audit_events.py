"""``audit_events``: the account's audit trail."""

from __future__ import annotations

from rest_framework.response import Response

from accounts.api.base import AccountApi, body_datetime, body_uuid
from audit.export import entry_record
from audit.selectors import audit_event_page
from audit.services import audit_chain_pending
from billing.entitlements import ensure_feature
from core.errors import Unprocessable


class AuditEventsApi(AccountApi):
    """``GET audit_events``: the account's audit trail, newest first, with filters (``event``,
    ``actor``, ``workspace``, ``since``, ``until``) and cursor paging (``limit`` ≤ 200, ``cursor``
    from the previous page's ``next_cursor``). Each event carries its place in the hash chain."""

    required_permissions = {"GET": "read:audit_event"}

    def get(self, request, **kwargs):
        ensure_feature(self.account, "audit_log")
        params = request.query_params
        workspace = body_uuid(params["workspace"], "workspace") if params.get("workspace") else None
        actor = body_uuid(params["actor"], "actor") if params.get("actor") else None
        since = body_datetime(params["since"], "since") if params.get("since") else None
        until = body_datetime(params["until"], "until") if params.get("until") else None
        before = None
        if params.get("cursor"):
            try:
                before = int(params["cursor"])
            except ValueError:
                raise Unprocessable("cursor is not one this API gave.", code="invalid_cursor") from None
        try:
            limit = int(params.get("limit", 50))
        except ValueError:
            raise Unprocessable("limit must be an integer.", code="invalid_paging") from None
        if not 1 <= limit <= 200:
            raise Unprocessable("limit must be between 1 and 200.", code="invalid_paging")
        if before is None:
            # The newest page shows records still waiting to join the chain (reads of secrets) too.
            audit_chain_pending(chain=self.account.pk)
        page, more = audit_event_page(
            chain=self.account.pk,
            limit=limit,
            api_name=params.get("event") or None,
            workspace_id=workspace,
            actor_id=actor,
            since=since,
            until=until,
            before_sequence=before,
        )
        return Response(
            {
                "events": [entry_record(entry) for entry in page],
                "next_cursor": str(page[-1].sequence) if more else None,
            }
        )
