"""The base of every Prefect wire route: tenant resolution and scopes (WorkspaceApiView), bodies
validated by pydantic, and errors in Prefect's shapes (422 for a bad body, ``{"detail": …}``)."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, TypeVar

from django.http import HttpResponse
from pydantic import BaseModel, ValidationError
from rest_framework.response import Response

from access.views import WorkspaceApiView
from billing.selectors import billing_warnings, ensure_new_work_allowed, ensure_writes_allowed
from core.errors import AppError, NotFound, prefect_exception_handler
from core.ids import as_uuid
from core.parsers import json_object

M = TypeVar("M", bound=BaseModel)


class InvalidBody(AppError):
    status_code = 422
    default_code = "invalid_body"


class PrefectApiView(WorkspaceApiView):
    # The wire API is Prefect's contract (described by Prefect's own OpenAPI document); it is left
    # out of this product's schema.
    schema = None
    #: Methods that start new work (a flow run): refused with a 402 once the account's payment is
    #: overdue past its grace period (``billing.selectors``). A suspended account's writes are all
    #: refused; reads never are. Both read the account the gate already loaded: no query.
    starts_new_work: ClassVar[frozenset[str]] = frozenset()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method in self.starts_new_work:
            ensure_new_work_allowed(self.account)
        elif not (self.need_of(request) or "see_").startswith("see_"):
            ensure_writes_allowed(self.account)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        account = getattr(self, "account", None)
        if account is not None and account.billing_status != "active":
            # Billing's warning (a failed payment's grace period, what is refused after it) rides
            # on every answer as an RFC 7234 Warning header; clients ignore what they do not read.
            for text in billing_warnings(account)[:1]:
                text = text.replace('"', "'").encode("latin-1", "replace").decode("latin-1")
                response["Warning"] = f'299 - "{text}"'
        return response

    def parse(self, schema: type[M], data: Any = None) -> M:
        payload = self.request.data if data is None else data
        try:
            return schema.model_validate(payload)
        except ValidationError as error:
            raise InvalidBody(
                "Invalid request received.",
                extra={
                    "exception_detail": error.errors(
                        include_url=False, include_context=False, include_input=False
                    )
                },
            ) from None

    def body(self) -> dict:
        return json_object(self.request.data)

    def get_exception_handler(self):
        # Prefect's shapes and codes (core.errors: malformed JSON is 422, errors carry only
        # ``detail`` and their ``extra``, a 423 its Retry-After).
        return prefect_exception_handler


def parse_id(value: str, what: str) -> uuid.UUID:
    parsed = as_uuid(value)
    if parsed is None:
        raise NotFound(f"{what} not found.")
    return parsed


def created(data: Any) -> Response | HttpResponse:
    if data is None:
        # DRF renders None as an empty body; Prefect answers a JSON null.
        return HttpResponse(b"null", status=201, content_type="application/json")
    return Response(data, status=201)


def no_content() -> Response:
    return Response(status=204)
