"""The control plane's OpenAPI document: served at /api/schema/, the account API whole, Prefect's wire
routes left out, and generated with no warnings."""

from __future__ import annotations

import re

import pytest
import yaml
from django.core.management import call_command

from orchestration.api.base import PrefectApiView
from tests.routes import iter_routes

_PARAM = re.compile(r"<(?:[^>:]+:)?([^>]+)>")


def openapi_path(template: str) -> str:
    return "/" + _PARAM.sub(r"{\1}", template)


@pytest.fixture(scope="module")
def document():
    from django.test import Client

    response = Client().get("/api/schema/")
    assert response.status_code == 200, response.content[:500]
    assert "json" in response["Content-Type"]
    return response.json()


def test_the_schema_is_public_openapi_3(document):
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Control plane API"
    assert "Prefect" in document["info"]["description"]
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A user key (pnu_…) or a service-account key (pnb_…).",
    }


def test_the_account_api_is_described(document):
    paths = document["paths"]
    bots = paths["/api/accounts/{account_ref}/bots/"]["post"]
    assert {"ApiKey": []} in bots["security"]
    assert "create:bot" in bots["description"]
    assert "/api/accounts/{account_ref}/bots/{bot_id}/rotate_api_key" in paths
    assert "/api/accounts/{account_ref}/workspaces/{workspace_ref}/user_access/" in paths
    assert "/api/users/{user_id}/api_keys" in paths
    assert "/api/me/workspaces" in paths


def test_every_control_plane_route_of_an_account_is_in_the_schema(document):
    """Routes of the account API are documented whole; only Prefect's wire routes (and the
    browser pages of Prefect's UI, outside ``/api/``) stay out."""
    missing = []
    for route in iter_routes():
        view = route.view_class
        if view is None or "account_ref" not in route.params or issubclass(view, PrefectApiView):
            continue
        if not route.template.startswith("api/"):
            continue
        path = openapi_path(route.template)
        if path not in document["paths"] and path.rstrip("/") not in document["paths"]:
            missing.append(path)
    assert missing == []


def test_prefect_wire_routes_stay_out(document):
    wire = [
        openapi_path(r.template)
        for r in iter_routes()
        if r.view_class and issubclass(r.view_class, PrefectApiView)
    ]
    assert "/api/accounts/{account_ref}/workspaces/{workspace_ref}/flow_runs/filter" in wire
    assert set(wire).isdisjoint(document["paths"])
    assert not [path for path in document["paths"] if "flow_runs" in path]


def test_yaml_on_request(client):
    response = client.get("/api/schema/?format=yaml")
    assert response.status_code == 200
    assert yaml.safe_load(response.content)["paths"]["/api/accounts/{account_ref}/bots/"]


def test_the_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (
        "/api/accounts/{account_ref}/bots/" in yaml.safe_load((tmp_path / "schema.yaml").read_text())["paths"]
    )


@pytest.mark.django_db
def test_my_workspaces_is_described_as_the_list_it_answers(document, tenant, api_client):
    """``/api/me/workspaces`` answers a list; the document once called it an object (found by the
    schemathesis run). The real answer validates against the document's schema."""
    import jsonschema

    response_schema = document["paths"]["/api/me/workspaces"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    assert response_schema["type"] == "array"
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.member_key}")
    answer = api_client.get("/api/me/workspaces").json()
    assert len(answer) == 1
    jsonschema.validate(answer, {**response_schema, "components": document["components"]})
