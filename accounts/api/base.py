"""What every account API view shares: the view base (``AccountApi``), the body parser, path and
body ids, datetimes, filters and paging, and the error answers (422 with ``{"detail": …}``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from access.views import AccountApiView
from accounts.permissions import AccountRole
from accounts.roles import (
    account_role_resolve,
    workspace_role_resolve,
)
from core.errors import AppError, InvalidInput, NotFound, Unprocessable
from tenants.models import Workspace

DEFAULT_LIMIT = 200


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def body_uuid(value, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise Unprocessable(f"{what} must be a UUID.", code="invalid_id") from None


def path_id(value, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise NotFound(f"{what} not found.") from None


def body_datetime(value, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is not None:
            if timezone.is_naive(parsed):
                parsed = timezone.make_aware(parsed, UTC)
            # In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows.
            parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None:
        raise Unprocessable(f"{what} must be an ISO 8601 datetime.", code="invalid_datetime")
    return parsed


def any_filter(body: dict, collection: str, field: str) -> list | None:
    """``body[collection][field]["any_"]`` (Prefect's filter grammar), or None when absent."""
    section = body.get(collection) or {}
    if not isinstance(section, dict):
        raise Unprocessable(f"{collection} must be an object.", code="invalid_filter")
    criterion = section.get(field) or {}
    if not isinstance(criterion, dict):
        raise Unprocessable(f"{collection}.{field} must be an object.", code="invalid_filter")
    values = criterion.get("any_")
    if values is not None and not isinstance(values, list):
        raise Unprocessable(f"{collection}.{field}.any_ must be a list.", code="invalid_filter")
    return values


def paged(body: dict, queryset):
    limit, offset = body.get("limit", DEFAULT_LIMIT), body.get("offset", 0)
    if not isinstance(limit, int) or not isinstance(offset, int) or limit < 0 or offset < 0:
        raise Unprocessable("limit and offset must be non-negative integers.", code="invalid_paging")
    return queryset[offset : offset + limit]


class ApiMixin:
    """Bodies as JSON objects, and every client error in ``{"detail": …}`` with Prefect Cloud's
    status codes (422 for a value that cannot be used)."""

    schema = None

    def body(self) -> dict:
        data = self.request.data
        if data in (None, b"", ""):
            return {}
        if not isinstance(data, dict):
            raise Unprocessable("The request body must be a JSON object.", code="invalid_body")
        return data

    def handle_exception(self, exc):
        if isinstance(exc, drf_exceptions.ParseError):
            return Response({"detail": f"Invalid request received: {exc.detail}"}, status=422)
        if isinstance(exc, InvalidInput):
            return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=422)
        if isinstance(exc, ValueError) and not isinstance(exc, AppError):
            # Enum conversions of request values (an unknown role key) land here.
            return Response({"detail": str(exc)}, status=422)
        return super().handle_exception(exc)


class AccountApi(ApiMixin, AccountApiView):
    def _account_role(
        self, body: dict, key: str = "account_role_id", default=AccountRole.MEMBER
    ) -> AccountRole:
        value = body.get(key)
        if value is None:
            return default
        role = account_role_resolve(body_uuid(value, key))
        if role is None:
            raise NotFound("Account role not found.")
        return role

    def _workspace_role(self, value, key: str = "workspace_role_id"):
        role = workspace_role_resolve(body_uuid(value, key), account=self.account)
        if role is None:
            raise NotFound("Workspace role not found.")
        return role

    def _workspace(self, workspace_id) -> Workspace:
        workspace = Workspace.objects.filter(
            account=self.account, pk=path_id(workspace_id, "Workspace")
        ).first()
        if workspace is None:
            raise NotFound("Workspace not found.")
        return workspace
