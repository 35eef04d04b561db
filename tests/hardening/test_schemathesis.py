"""Schemathesis over the two documents the product answers to, in process through the production
WSGI handler (``config.wsgi.application``), with a real account, workspace and an account Owner's key:

- the control plane's own OpenAPI, as served at ``GET /api/schema/``;
- Prefect's OpenAPI, built from the pinned ``prefect`` package's server
  (``prefect.server.api.server.create_api_app().openapi()``), every path rebased on
  ``/api/accounts/<account>/workspaces/<workspace>``.

For every generated request: never a 5xx (``not_a_server_error``); an answer whose status the
document describes matches the shape the document gives it (``response_schema_conformance``); a
successful answer uses a status the document lists (``status_code_conformance`` on 2xx only: both
documents describe success and leave most refusals, a 404 for an id that names nothing, a 403,
undocumented); and a refused request (4xx) stores nothing: every table's row count is the same
before and after it, save the rows a refusal writes by design (its audit record, the key's last use).

The tenant's own path parameters (``account_ref``, ``workspace_ref``) are fixed to the real
account and workspace; every other id is drawn, so most reads of one object answer 404 and the
rest of the request is what is fuzzed.

Which routes: the control plane's document is taken whole, and so is Prefect's: this product routes
all 188 of Prefect 3.9's operations with the methods Prefect gives them
(``test_every_operation_of_prefects_document_is_routed`` fails when one stops resolving, to be left
out here with its reason). Prefect's document is corrected where it disagrees with Prefect's own
server (``_prefect_document``): refusals are ``{"detail"}`` or ``{"exception_message"}``, with
``exception_detail`` on a 422, not FastAPI's ``HTTPValidationError``; and the 201 or 204 a handler
sets itself is added to the statuses it may answer. Both documents are read when the module is
collected (Prefect's takes about 8 s to build). Routes in neither document: the
workspace's incoming webhooks (``webhooks/``, a Prefect Cloud resource with no OpenAPI of its own
here), Prefect's UI pages and ``ui-settings`` (browser pages), the websockets (``events/in``,
``events/out``, ``logs/out``, ``task_runs/subscriptions/scheduled``: not HTTP), SCIM (its own
conformance run, ``tests/live/test_scim_conformance.py``), and the console.

Bounded for CI: ``FUZZ_EXAMPLES`` generated cases per operation (default 2) after each operation's
schema examples, derandomized, no deadline, the coverage phase off. A long run searches harder and
adds schemathesis' coverage phase (boundary values of every parameter and body field):
``FUZZ_EXAMPLES=100 pytest tests/hardening/test_schemathesis.py``.
"""

from __future__ import annotations

import copy
import inspect
import os
import re

import pytest
import schemathesis
from django.apps import apps
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from accounts.api_keys.services import api_key_create
from accounts.permissions import AccountRole
from accounts.services import membership_add
from audit.actors import SYSTEM
from config.wsgi import application
from tests.factories import UserFactory
from tests.hardening.test_body_sweep import MAY_WRITE

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2"))
LONG_RUN = EXAMPLES > 2
WORKSPACE_PREFIX = "/api/accounts/{account_ref}/workspaces/{workspace_ref}"
TENANT_PARAMETERS = ("account_ref", "workspace_ref")

pytestmark = pytest.mark.django_db


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": 21,
            "phases": {"coverage": {"enabled": LONG_RUN}, "stateful": {"enabled": False}},
            "suppress-health-check": ["all"],
        }
    )


def _table_counts_sql() -> str:
    tables = sorted(
        model._meta.db_table
        for model in apps.get_models()
        if model._meta.label not in MAY_WRITE
        and not model._meta.label.startswith("auditlog.")
        and model._meta.managed
        and not model._meta.proxy
    )
    quote = connection.ops.quote_name
    return "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {quote(t)})" for t in tables)


def _row_counts(sql: str) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchone())


# What Prefect's server answers on a refusal (``validation_exception_handler`` and FastAPI's
# ``HTTPException``); this product answers the second shape, with ``exception_detail`` on a 422.
# Prefect's document says FastAPI's default ``HTTPValidationError`` instead, which neither sends.
PREFECT_ERROR = {
    "type": "object",
    "anyOf": [
        {"required": ["detail"], "properties": {"detail": {"type": "string"}}},
        {"required": ["exception_message"], "properties": {"exception_message": {"type": "string"}}},
    ],
    "properties": {"exception_detail": {"type": "array"}},
}


def _answers_status(endpoint, code: int) -> bool:
    """Whether the handler in Prefect's server source sets ``code`` itself (``response.status_code
    = status.HTTP_201_CREATED`` on a create that made something new, ``Response(status_code=204)``),
    a status its document leaves out."""
    source = inspect.getsource(endpoint)
    names = {201: ("HTTP_201_CREATED",), 204: ("HTTP_204_NO_CONTENT", "status_code=204")}[code]
    return any(name in source for name in names)


def _prefect_document() -> dict:
    """Prefect's own OpenAPI, paths rebased on the workspace prefix (about 8 s to build), corrected
    where it disagrees with Prefect's own server: its refusals' shape, and the 201 and 204 its
    handlers answer without declaring them."""
    from fastapi.routing import APIRoute
    from prefect.server.api.server import create_api_app

    app = create_api_app()
    spec = copy.deepcopy(app.openapi())  # the app keeps its document: never change that one

    def api_routes(routes, prefix: str = ""):
        for route in routes:
            if isinstance(route, APIRoute):
                yield prefix + re.sub(r"\{([^}:]+):[^}]+\}", r"{\1}", route.path), route
            elif hasattr(route, "original_router"):  # an included router
                yield from api_routes(route.original_router.routes, prefix + route.include_context.prefix)

    endpoints = {
        (path, method.lower()): route.endpoint
        for path, route in api_routes(app.routes)
        for method in route.methods
    }
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {
                    "description": "Refused",
                    "content": {"application/json": {"schema": PREFECT_ERROR}},
                }
            endpoint = endpoints.get((path, method))
            success = next((code for code in ("200", "201") if code in responses), None)
            for code in (201, 204):
                if endpoint and str(code) not in responses and _answers_status(endpoint, code):
                    described = responses.get(success, {}) if code == 201 else {}
                    responses[str(code)] = {"description": "Answered by the handler", **described}
    spec["paths"] = {WORKSPACE_PREFIX + path: item for path, item in spec["paths"].items()}
    spec.pop("servers", None)
    for item in spec["paths"].values():
        for operation in item.values():
            operation.setdefault("parameters", [])
            operation["parameters"] += [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in TENANT_PARAMETERS
            ]
    return spec


PREFECT_DOCUMENT = _prefect_document()
control_plane = schemathesis.openapi.from_wsgi("/api/schema/", application, config=_config())
prefect = schemathesis.openapi.from_dict(PREFECT_DOCUMENT, config=_config())
prefect.app = application


@pytest.fixture
def owner_key(tenant) -> str:
    owner = UserFactory()
    membership_add(account=tenant.account, user=owner, role=AccountRole.OWNER, actor=SYSTEM)
    return api_key_create(owner=owner, name="fuzz", actor=SYSTEM)[1]


@pytest.fixture
def counts_sql() -> str:
    return _table_counts_sql()


@pytest.fixture(autouse=True)
def _one_connection_across_requests():
    """Keep the test's connection (and its transaction) open across requests, as Django's test
    client does: the handler would otherwise close it at each request's start and end."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _exercise(case, tenant, owner_key: str, counts_sql: str) -> None:
    pinned = {"account_ref": str(tenant.account.id), "workspace_ref": str(tenant.workspace.id)}
    case.path_parameters = {
        **(case.path_parameters or {}),
        **{name: value for name, value in pinned.items() if name in (case.path_parameters or {})},
    }
    before = _row_counts(counts_sql)
    response = case.call(headers={"Authorization": f"Bearer {owner_key}"})
    checks = [not_a_server_error, response_schema_conformance]
    if 200 <= response.status_code < 300:
        checks.append(status_code_conformance)
    case.validate_response(response, checks=checks)
    if 400 <= response.status_code < 500:
        after = _row_counts(counts_sql)
        assert after == before, (
            f"{case.method} {case.formatted_path} answered {response.status_code} and stored rows"
        )


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@control_plane.parametrize()
@FUZZ_SETTINGS
def test_the_control_plane_api_holds_to_its_document(case, tenant, owner_key, counts_sql):
    _exercise(case, tenant, owner_key, counts_sql)


@prefect.parametrize()
@FUZZ_SETTINGS
def test_prefects_api_under_a_workspace_holds_to_prefects_document(case, tenant, owner_key, counts_sql):
    _exercise(case, tenant, owner_key, counts_sql)


def test_every_operation_of_prefects_document_is_routed():
    """Prefect's routes this product does not serve would be fuzzed as 404s; none today."""
    from django.urls import Resolver404, resolve

    unrouted = []
    for path, item in PREFECT_DOCUMENT["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000001", path)
        try:
            match = resolve(concrete)
        except Resolver404:
            unrouted.append(path)
            continue
        declared = set(getattr(match.func.view_class, "required_scopes", None) or ())
        unrouted += [f"{m.upper()} {path}" for m in item if m.upper() not in declared]
    assert unrouted == []
