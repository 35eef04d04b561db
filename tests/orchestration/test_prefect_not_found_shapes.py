"""What Prefect's server answers for an object that does not exist, route by route, where its answer
is not its routes' usual ``{"detail": …}`` 404: the 404s its models raise (``ObjectNotFoundError``,
answered ``{"exception_message": …}``) and the routes that answer ``null`` (captured from Prefect
3.9.1's server)."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import bearer

pytestmark = pytest.mark.django_db

MISSING = uuid.UUID("00000000-0000-0000-0000-0000000000aa")

CASES = [
    (
        "get",
        "flow_runs/{id}/graph",
        None,
        404,
        {"exception_message": f"Flow run with id {MISSING} not found"},
    ),
    ("get", "flow_runs/{id}/graph-v2", None, 404, {"exception_message": f"Flow run {MISSING} not found"}),
    (
        "post",
        "flow_runs/{id}/set_state",
        {"state": {"type": "RUNNING"}},
        404,
        {"exception_message": f"Flow run with id {MISSING} not found"},
    ),
    (
        "patch",
        "flow_runs/{id}/labels",
        {"a": "b"},
        404,
        {"exception_message": f"Flow run with id {MISSING} not found"},
    ),
    (
        "post",
        "task_runs/{id}/set_state",
        {"state": {"type": "RUNNING"}},
        404,
        {"exception_message": f"Task run with id {MISSING} not found"},
    ),
    (
        "post",
        "work_queues/{id}/get_runs",
        {},
        404,
        {"exception_message": f"Work queue with id {MISSING} not found."},
    ),
    (
        "get",
        "work_queues/{id}/status",
        None,
        404,
        {"exception_message": f"Work queue with id {MISSING} not found"},
    ),
    ("post", "deployments/{id}/schedule", {}, 200, None),
    ("get", "flow_runs/{id}/logs/download", None, 404, {"detail": "Flow run not found"}),
]


@pytest.mark.parametrize(("method", "route", "body", "status", "answer"), CASES, ids=[c[1] for c in CASES])
def test_a_missing_object_answers_as_prefect_does(tenant, dev, method, route, body, status, answer):
    url = f"{tenant.prefix}/{route.format(id=MISSING)}"
    response = (
        getattr(dev, method)(url, body, format="json") if body is not None else getattr(dev, method)(url)
    )
    assert (response.status_code, response.json()) == (status, answer)


def test_another_workspaces_flow_run_graph_is_as_missing(two_workspaces, api_client):
    a, b = two_workspaces
    b_client = bearer(api_client, b.service_key)
    flow = b_client.post(f"{b.prefix}/flows/", {"name": "f"}, format="json").json()
    run = b_client.post(f"{b.prefix}/flow_runs/", {"flow_id": flow["id"]}, format="json").json()
    a_client = bearer(api_client, a.service_key)
    for route, message in (("graph", "Flow run with id {} not found"), ("graph-v2", "Flow run {} not found")):
        response = a_client.get(f"{a.prefix}/flow_runs/{run['id']}/{route}")
        assert (response.status_code, response.json()) == (
            404,
            {"exception_message": message.format(run["id"])},
        )
