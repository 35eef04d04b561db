"""What every account API view shares: the view base (``AccountApi``), the ONE body parser
(``parse_body``: a pydantic model validated, its errors answered as 422 ``{"detail", "code"}``),
path and body ids, datetimes, Prefect's filter grammar and paging, and the error answers.

A body model's fields say how a bad value is answered: the validators below raise ``Refusal`` with
the API's own ``detail`` and ``code``, which ``parse_body`` turns into ``Unprocessable``. Values the
services check themselves (names, scopes, settings) are passed through as given, so the console
and the API refuse them alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo

from access.views import AccountApiView
from accounts.permissions import AccountRole
from accounts.roles import ResolvedRole, account_role_resolve, workspace_role_resolve
from accounts.selectors import account_workspace_get
from core.errors import NotFound, Unprocessable
from core.ids import as_uuid
from core.parsers import json_object
from tenants.models import Workspace

DEFAULT_LIMIT = 200


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _unprocessable(detail: str, code: str) -> Unprocessable:
    return Unprocessable(detail, code=code)


def body_uuid(value, what: str, *, error=_unprocessable) -> uuid.UUID:
    parsed = as_uuid(value)
    if parsed is None:
        raise error(f"{what} must be a UUID.", "invalid_id")
    return parsed


def path_id(value, what: str) -> uuid.UUID:
    parsed = as_uuid(value)
    if parsed is None:
        raise NotFound(f"{what} not found.")
    return parsed


def body_datetime(value, what: str, *, error=_unprocessable) -> datetime | None:
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
        raise error(f"{what} must be an ISO 8601 datetime.", "invalid_datetime")
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


# --- bodies -----------------------------------------------------------------------------------------


class Refusal(ValueError):
    """Raised by a body field's validator: the ``detail`` and ``code`` the API answers with."""

    def __init__(self, detail: str, code: str):
        super().__init__(detail)
        self.detail, self.code = detail, code


class Body(BaseModel):
    """A request body: keys it does not know are ignored; ``model_fields_set`` tells a key sent as
    null from one not sent."""

    model_config = ConfigDict(extra="ignore")


B = TypeVar("B", bound=Body)


def parse_body(schema: type[B], data: Any) -> B:
    """``data`` validated as ``schema``; a bad value answers 422 with the field's own detail."""
    try:
        return schema.model_validate(json_object(data))
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        refusal = (first.get("ctx") or {}).get("error")
        if isinstance(refusal, Refusal):
            raise Unprocessable(refusal.detail, code=refusal.code) from None
        where = ".".join(str(part) for part in first["loc"])
        raise Unprocessable(f"{where}: {first['msg']}", code="invalid_body") from None


def checked(test: Callable[[Any], bool], detail: str, code: str) -> AfterValidator:
    """A field validator: the value as given when ``test`` holds, else ``Refusal(detail, code)``."""

    def validate(value: Any) -> Any:
        if not test(value):
            raise Refusal(detail, code)
        return value

    return AfterValidator(validate)


def _uuid_value(value: Any, info: ValidationInfo) -> uuid.UUID | None:
    return None if value is None else body_uuid(value, info.field_name, error=Refusal)


def _datetime_value(value: Any, info: ValidationInfo) -> datetime | None:
    return body_datetime(value, info.field_name, error=Refusal)


BodyUUID = Annotated[Any, AfterValidator(_uuid_value)]
"""A UUID (or null); anything else answers ``"<field> must be a UUID."``, code ``invalid_id``."""

BodyDatetime = Annotated[Any, AfterValidator(_datetime_value)]
"""An ISO 8601 datetime, in UTC (or null); anything else answers ``invalid_datetime``."""


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def optional_integer(detail: str, code: str) -> AfterValidator:
    return checked(lambda value: value is None or _is_integer(value), detail, code)


def list_of_objects(detail: str, code: str) -> AfterValidator:
    return checked(
        lambda value: isinstance(value, list) and all(isinstance(entry, dict) for entry in value),
        detail,
        code,
    )


class ApiMixin:
    """Bodies as JSON objects or pydantic models; errors answer from ``core.errors``' table in the
    control plane's shape (``{"detail", "code"}``, 422 for a value that cannot be used)."""

    def body(self) -> dict:
        """The body as a JSON object, for bodies a service reads whole (settings, an identity
        provider's configuration) and for filters."""
        return json_object(self.request.data)

    def parse(self, schema: type[B]) -> B:
        return parse_body(schema, self.request.data)


class AccountApi(ApiMixin, AccountApiView):
    def _account_role(self, role_id: uuid.UUID | None, default=AccountRole.MEMBER) -> AccountRole:
        """The account role a body's (already parsed) ``account_role_id`` names."""
        if role_id is None:
            return default
        role = account_role_resolve(role_id)
        if role is None:
            raise NotFound("Account role not found.")
        return role

    def _workspace_role(self, role_id: uuid.UUID) -> ResolvedRole:
        role = workspace_role_resolve(role_id, account=self.account)
        if role is None:
            raise NotFound("Workspace role not found.")
        return role

    def _workspace(self, workspace_id) -> Workspace:
        workspace = account_workspace_get(
            account=self.account, workspace_id=path_id(workspace_id, "Workspace")
        )
        if workspace is None:
            raise NotFound("Workspace not found.")
        return workspace
