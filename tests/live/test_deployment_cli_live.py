"""End to end with the real ``prefect`` CLI and client (in subprocesses) against the live server:
``prefect work-queue create`` without ``--pool`` and ``prefect work-queue ls``; ``prefect deployment
run`` with placeholder parameters (expanded by the server, a bad one refused with Prefect's
detail); ``prefect deployment inspect``; and the bulk routes, the schedule route and the
concurrency statuses as the client's own methods (or its ``request``) send them."""

from __future__ import annotations

import json
import textwrap
import uuid

import httpx
import pytest
from django.urls import Resolver404, resolve

from orchestration.models import Deployment, Flow, FlowRun, WorkQueue
from tenants.scoping import workspace_scope

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _api(live_tenant) -> httpx.Client:
    return httpx.Client(
        base_url=live_tenant.api_url + "/",
        headers={"Authorization": f"Bearer {live_tenant.developer_key}"},
        timeout=30,
    )


def _deployment(live_tenant, **extra) -> dict:
    with _api(live_tenant) as api:
        flow = api.post("flows/", json={"name": "etl"}).json()
        body = {"name": "nightly", "flow_id": flow["id"], "enforce_parameter_schema": False, **extra}
        response = api.post("deployments/", json=body)
        assert response.status_code == 201, response.text
        return response.json()


def _in(live_tenant, fn):
    with workspace_scope(live_tenant.workspace.id):
        return fn()


def test_work_queue_create_without_a_pool_and_ls(run_prefect, live_tenant):
    created = run_prefect(["prefect", "work-queue", "create", "etl-queue", "--limit", "3"])
    assert created.returncode == 0, created.describe()
    queue = _in(live_tenant, lambda: WorkQueue.objects.select_related("work_pool").get(name="etl-queue"))
    assert queue.work_pool.name == "default-agent-pool" and queue.concurrency_limit == 3
    # Without --pool the CLI posts to work_queues/ (not to a pool's queues).
    assert "POST W/work_queues/ -> 201" in created.trail, created.describe()

    again = run_prefect(["prefect", "work-queue", "create", "etl-queue"])
    assert again.returncode != 0 and "already exists" in again.output, again.describe()
    assert _in(live_tenant, lambda: WorkQueue.objects.filter(name="etl-queue").count()) == 1

    listing = run_prefect(["prefect", "work-queue", "ls"])
    assert listing.returncode == 0, listing.describe()
    assert "etl-queue" in listing.stdout and "default-agent-pool" in listing.stdout, listing.describe()


def test_deployment_run_with_placeholder_parameters(run_prefect, live_tenant):
    with _api(live_tenant) as api:
        api.post("variables/", json={"name": "region", "value": "eu-west-1"})
    # The CLI accepts only parameters the deployment's schema names.
    schema = {
        "type": "object",
        "properties": {name: {"title": name} for name in ("region", "items", "label")},
    }
    _deployment(
        live_tenant,
        parameter_openapi_schema=schema,
        parameters={"region": {"__prefect_kind": "workspace_variable", "variable_name": "region"}},
    )
    items = json.dumps({"__prefect_kind": "json", "value": "[1, 2, 3]"})
    label = json.dumps({"__prefect_kind": "jinja", "template": "run-{{ 40 + 2 }}"})
    run = run_prefect(
        [
            "prefect",
            "deployment",
            "run",
            "etl/nightly",
            "--param",
            f"items={items}",
            "--param",
            f"label={label}",
        ]
    )
    assert run.returncode == 0, run.describe()
    flow_run = _in(live_tenant, lambda: FlowRun.objects.get())
    assert flow_run.parameters == {"region": "eu-west-1", "items": [1, 2, 3], "label": "run-42"}

    bad = json.dumps({"__prefect_kind": "workspace_variable", "variable_name": "missing"})
    refused = run_prefect(["prefect", "deployment", "run", "etl/nightly", "--param", f"items={bad}"])
    assert refused.returncode != 0, refused.describe()
    assert "Variable 'missing' not found in workspace." in refused.output, refused.describe()
    assert _in(live_tenant, lambda: FlowRun.objects.count()) == 1


def test_deployment_run_with_parameters_the_schema_refuses(run_prefect, live_tenant):
    schema = {"type": "object", "properties": {"n": {"type": "integer", "title": "n"}}, "required": []}
    _deployment(live_tenant, enforce_parameter_schema=True, parameter_openapi_schema=schema, parameters={})
    refused = run_prefect(["prefect", "deployment", "run", "etl/nightly", "--param", 'n="seven"'])
    assert refused.returncode != 0, refused.describe()
    assert "Validation failed for field 'n'" in refused.output, refused.describe()
    assert "409" in refused.trail, refused.describe()
    assert _in(live_tenant, lambda: FlowRun.objects.count()) == 0


def _related_to_served(live_tenant) -> bool:
    try:
        resolve(f"{live_tenant.prefix}/automations/related-to/prefect.deployment.{uuid.uuid4()}")
    except Resolver404:
        return False
    return True


def test_deployment_inspect(run_prefect, live_tenant):
    deployment = _deployment(live_tenant, parameters={"n": 1}, tags=["nightly"])
    inspected = run_prefect(["prefect", "deployment", "inspect", "etl/nightly", "--output", "json"])
    reads = [line for line in inspected.trail.splitlines() if "deployments/name/etl/nightly" in line]
    assert reads and "-> 200" in reads[0], inspected.describe()
    if not _related_to_served(live_tenant):
        # ``inspect`` then reads the deployment's automations (``automations/related-to/…``), a
        # route of the automations work; until it is merged that read is the one that fails.
        failing = [line for line in inspected.trail.splitlines() if "-> 4" in line or "-> 5" in line]
        assert failing and all("automations/related-to/" in line for line in failing), inspected.describe()
        return
    assert inspected.returncode == 0, inspected.describe()
    shown = json.loads(inspected.stdout[inspected.stdout.index("{") :])
    assert shown["id"] == deployment["id"] and shown["parameters"] == {"n": 1} and shown["automations"] == []


CLIENT_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from prefect.client.orchestration import get_client

    DEPLOYMENT_ID, QUEUE_ID, POOL = sys.argv[1], sys.argv[2], sys.argv[3]

    async def main():
        out = {}
        async with get_client() as client:
            made = await client.request(
                "POST", "/deployments/{id}/create_flow_run/bulk", path_params={"id": DEPLOYMENT_ID},
                json=[{"parameters": {"n": 1}}, {"parameters": {"n": {"__prefect_kind": "json", "value": "{"}}}],
            )
            out["bulk_create"] = [made.status_code, made.json()]
            scheduled = await client.request(
                "POST", "/deployments/{id}/schedule", path_params={"id": DEPLOYMENT_ID},
                json={"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-01-01T02:00:00Z", "min_runs": 10},
            )
            out["schedule"] = [scheduled.status_code, scheduled.json()]
            queue = await client.read_work_queue_concurrency_status(QUEUE_ID, limit=5)
            out["queue_status"] = queue.model_dump(mode="json")
            pool = await client.read_work_pool_concurrency_status(POOL)
            out["pool_status"] = pool.model_dump(mode="json")
            checked = await client.request("GET", "/deployments/{id}/work_queue_check", path_params={"id": DEPLOYMENT_ID})
            out["work_queue_check"] = [checked.status_code, [q["name"] for q in checked.json()]]
            page = await client.request("POST", "/flows/paginate", json={"limit": 1})
            out["flows_page"] = page.json()
            deleted = await client.request("POST", "/deployments/bulk_delete", json={"deployments": {"id": {"any_": [DEPLOYMENT_ID]}}})
            out["bulk_delete"] = deleted.json()
            flows = await client.request("POST", "/flows/bulk_delete", json={"flows": {"name": {"any_": ["etl"]}}})
            out["flows_bulk_delete"] = flows.json()
        print("RESULT " + json.dumps(out), flush=True)

    asyncio.run(main())
    """
)


def test_bulk_and_status_routes_as_the_client_sends_them(run_prefect, live_tenant):
    with _api(live_tenant) as api:
        assert api.post("work_pools/", json={"name": "k8s", "type": "kubernetes"}).status_code == 201
        queue = api.get("work_pools/k8s/queues/default").json()
    deployment = _deployment(
        live_tenant,
        work_pool_name="k8s",
        schedules=[
            {"schedule": {"interval": 3600, "anchor_date": "2024-01-01T00:00:00Z", "timezone": "UTC"}}
        ],
    )
    with _api(live_tenant) as api:
        running = api.post(
            f"deployments/{deployment['id']}/create_flow_run",
            json={"state": {"type": "RUNNING", "name": "Running"}},
        )
        assert running.status_code == 201, running.text

    run = run_prefect(["-c", CLIENT_SCRIPT, deployment["id"], queue["id"], "k8s"])
    assert run.returncode == 0, run.describe()
    out = run.result
    status, made = out["bulk_create"]
    assert status == 200 and [r["status"] for r in made["results"]] == ["CREATED", "FAILED"], run.describe()
    assert made["results"][1]["error"].startswith("Invalid JSON")
    assert out["schedule"] == [200, None]
    assert (
        out["queue_status"]["active_slots"] == 1
        and out["queue_status"]["flow_runs"][0]["id"] == running.json()["id"]
    )
    assert (
        out["pool_status"]["active_slots"] == 1 and out["pool_status"]["queues"][0]["queue_name"] == "default"
    )
    assert out["work_queue_check"][0] == 200 and "default" in out["work_queue_check"][1]
    assert out["flows_page"]["count"] == 1 and out["flows_page"]["results"][0]["name"] == "etl"
    assert out["bulk_delete"] == {"deleted": [deployment["id"]]}
    assert out["flows_bulk_delete"]["deleted"] and len(out["flows_bulk_delete"]["deleted"]) == 1
    assert _in(
        live_tenant, lambda: (Deployment.objects.count(), Flow.objects.count(), FlowRun.objects.count())
    ) == (0, 0, 0)
