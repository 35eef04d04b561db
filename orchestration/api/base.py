"""The base of every Prefect wire route: tenant resolution and scopes (WorkspaceApiView), bodies
validated by pydantic, and errors in Prefect's shapes (422 for a bad body, ``{"detail": …}``)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from django.http import HttpResponse
from pydantic import BaseModel, ValidationError
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from access.views import WorkspaceApiView
from core.errors import AppError, NotFound

M = TypeVar("M", bound=BaseModel)


class InvalidBody(AppError):
    status_code = 422
    default_code = "invalid_body"


class PrefectApiView(WorkspaceApiView):
    # The wire API is Prefect's contract (described by Prefect's own OpenAPI document); it is left
    # out of this product's schema.
    schema = None

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
        data = self.request.data
        if data in (None, b"", ""):
            return {}
        if not isinstance(data, dict):
            raise InvalidBody("The request body must be a JSON object.")
        return data

    def handle_exception(self, exc):
        # Prefect answers malformed JSON with 422, not 400, and its errors carry only ``detail``.
        if isinstance(exc, drf_exceptions.ParseError):
            return Response({"detail": f"Invalid request received: {exc.detail}"}, status=422)
        if isinstance(exc, AppError):
            return Response({"detail": exc.message, **exc.extra}, status=exc.status_code)
        return super().handle_exception(exc)


def parse_id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"{what} not found.") from None


def created(data: Any) -> Response | HttpResponse:
    if data is None:
        # DRF renders None as an empty body; Prefect answers a JSON null.
        return HttpResponse(b"null", status=201, content_type="application/json")
    return Response(data, status=201)


def no_content() -> Response:
    return Response(status=204)
