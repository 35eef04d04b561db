"""Shared builders for the deployment, flow and work-queue routes added for API parity."""

from __future__ import annotations

from tenants.scoping import workspace_scope

SCHEMA = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "n": {"default": 3, "position": 0, "title": "n", "type": "integer"},
        "name": {"position": 1, "title": "name", "type": "string"},
        "items": {"position": 2, "title": "items", "type": "array"},
    },
    "required": ["name"],
}


def hourly(**extra):
    return {"schedule": {"interval": 3600, "anchor_date": "2024-01-01T00:00:00Z", "timezone": "UTC"}, **extra}


def make_flow(client, tenant, name: str = "etl") -> str:
    response = client.post(f"{tenant.prefix}/flows/", {"name": name}, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()["id"]


def deploy(client, tenant, flow_id: str, name: str = "nightly", **extra):
    body = {
        "name": name,
        "flow_id": flow_id,
        "paused": False,
        "schedules": [],
        "enforce_parameter_schema": True,
        "parameter_openapi_schema": SCHEMA,
        "parameters": {"name": "world"},
        "tags": ["a"],
        "path": ".",
        "entrypoint": "flows.py:etl",
        "job_variables": {},
        **extra,
    }
    response = client.post(f"{tenant.prefix}/deployments/", body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def in_workspace(tenant, fn):
    with workspace_scope(tenant.workspace.id):
        return fn()
