"""One table, one renderer per surface: the same error answers in each surface's shape and code."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions

from core.errors import (
    Conflict,
    InvalidInput,
    Locked,
    NotFound,
    Surface,
    Unprocessable,
    api_exception_handler,
    error_answer,
    prefect_exception_handler,
)


def _render(handler, exc):
    response = handler(exc, {})
    return response.status_code, json.loads(json.dumps(response.data)), response


@pytest.mark.parametrize(
    ("exc", "control_plane", "prefect", "scim"),
    [
        (InvalidInput("bad"), 422, 400, 400),
        (Unprocessable("no"), 422, 422, 422),
        (NotFound("gone"), 404, 404, 404),
        (Conflict("taken"), 409, 409, 409),
        (Locked("later", headers={"Retry-After": "3"}), 423, 423, 423),
        (drf_exceptions.ParseError("JSON parse error"), 422, 422, 400),
        (drf_exceptions.NotAuthenticated(), 401, 401, 401),
        (drf_exceptions.PermissionDenied("Missing the scope"), 403, 403, 403),
        (Http404(), 404, 404, 404),
        (DjangoValidationError("nope"), 400, 400, 400),
    ],
)
def test_one_table_gives_each_surface_its_status(exc, control_plane, prefect, scim):
    assert error_answer(exc, Surface.CONTROL_PLANE).status == control_plane
    assert error_answer(exc, Surface.PREFECT).status == prefect
    assert error_answer(exc, Surface.SCIM).status == scim


def test_what_is_not_a_client_error_is_left_to_the_server_error_path():
    assert error_answer(ValueError("a bug"), Surface.CONTROL_PLANE) is None
    assert api_exception_handler(KeyError("a bug"), {}) is None
    assert prefect_exception_handler(RuntimeError("a bug"), {}) is None


def test_the_control_plane_answers_detail_with_a_stable_code_and_extra():
    status, body, _ = _render(
        api_exception_handler, InvalidInput("Bad role.", code="invalid_role", extra={"x": 1})
    )
    assert (status, body) == (422, {"detail": "Bad role.", "code": "invalid_role", "x": 1})


def test_prefect_routes_answer_prefects_shape_without_a_code():
    status, body, _ = _render(prefect_exception_handler, Conflict("Deployment exists.", extra={"id": "d"}))
    assert (status, body) == (409, {"detail": "Deployment exists.", "id": "d"})
    status, body, _ = _render(prefect_exception_handler, drf_exceptions.ParseError("Expecting value"))
    assert (status, body) == (422, {"detail": "Invalid request received: Expecting value"})


def test_an_error_carries_its_headers_on_every_surface():
    error = Locked("No slots.", headers={"Retry-After": "2.5"})
    for handler in (api_exception_handler, prefect_exception_handler):
        status, _, response = _render(handler, error)
        assert status == 423 and response["Retry-After"] == "2.5"
    assert error_answer(error, Surface.SCIM).headers == {"Retry-After": "2.5"}


def test_bad_credentials_answer_the_same_401_everywhere():
    for handler in (api_exception_handler, prefect_exception_handler):
        for exc in (drf_exceptions.NotAuthenticated(), drf_exceptions.AuthenticationFailed("revoked")):
            status, body, response = _render(handler, exc)
            assert (status, body) == (401, {"detail": "Invalid authentication credentials"})
            assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_lost_database_connection_is_a_retryable_503_on_every_surface():
    from django.db import InterfaceError, OperationalError

    for exc in (OperationalError("server closed the connection unexpectedly"), InterfaceError("closed")):
        for surface in Surface:
            answer = error_answer(exc, surface)
            assert (answer.status, answer.headers) == (503, {"Retry-After": "1"})
        status, body, response = _render(prefect_exception_handler, exc)
        assert status == 503 and response["Retry-After"] == "1" and body["detail"]


def test_a_value_its_column_cannot_hold_is_a_422_and_scims_400():
    from django.db import DataError

    exc = DataError("integer out of range")
    assert error_answer(exc, Surface.CONTROL_PLANE).status == 422
    assert error_answer(exc, Surface.PREFECT).status == 422
    assert error_answer(exc, Surface.SCIM).status == 400
