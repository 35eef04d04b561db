"""Runs from a deployment: placeholders in parameters expanded as Prefect's server expands them
(compared with Prefect's own ``hydrate``), ``create_flow_run/bulk``, ``schedule`` (runs now, and
backfills) and ``work_queue_check``. Answers are checked against Prefect's response models."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from prefect.client.schemas.objects import FlowRun as ClientFlowRun
from prefect.server.schemas.core import WorkQueue as CoreWorkQueue
from prefect.server.schemas.responses import FlowRunBulkCreateResponse
from prefect.utilities.schema_tools.hydration import HydrationContext
from prefect.utilities.schema_tools.hydration import HydrationError as PrefectHydrationError
from prefect.utilities.schema_tools.hydration import hydrate as prefect_hydrate
from rest_framework.test import APIClient

from orchestration.models import FlowRun
from orchestration.schemas.run_hydration import HydrationError, hydrate
from tests.conftest import bearer
from tests.orchestration.deployments_more.helpers import deploy, hourly, in_workspace, make_flow

pytestmark = pytest.mark.django_db

VARIABLES = {"region": "eu-west-1", "limits": {"cpu": 2}, "count": 7}

HYDRATION_CASES = [
    {"a": {"__prefect_kind": "json", "value": "[1, 2]"}},
    {"a": {"__prefect_kind": "json", "value": 5}},
    {"a": {"__prefect_kind": "json"}, "b": 1},
    {"a": [{"__prefect_kind": "json"}, {"__prefect_kind": "json", "value": '{"x": null}'}]},
    {"a": {"__prefect_kind": "json", "value": {"__prefect_kind": "json", "value": '"[3]"'}}},
    {"a": {"__prefect_kind": "jinja", "template": "{{ 1 + 2 }}-{{ prefect.variables.region }}"}},
    {"a": {"__prefect_kind": "jinja", "template": "{% for i in range(3) %}{{ i }}{% endfor %}"}},
    {"a": {"__prefect_kind": "jinja", "template": "plain"}},
    {"a": {"__prefect_kind": "workspace_variable", "variable_name": "limits"}},
    {
        "a": {"__prefect_kind": "workspace_variable"},
        "nested": {"b": {"__prefect_kind": "workspace_variable", "variable_name": "count"}},
    },
    {"a": {"__prefect_kind": "none", "value": {"b": {"__prefect_kind": "json", "value": "1"}}}},
    {"a": {"__prefect_kind": "mystery", "value": {"__prefect_kind": "json", "value": "1"}}},
    {"a": {"__prefect_kind": "mystery"}},
    {"a": "{{ prefect.variables.region }}", "b": [1, {"c": None}]},
]
HYDRATION_ERRORS = [
    {"a": {"__prefect_kind": "json", "value": "{bad"}},
    {"a": {"__prefect_kind": "jinja"}},
    {"a": {"__prefect_kind": "jinja", "template": "{% if %}"}},
    {"a": {"__prefect_kind": "jinja", "template": "{{ range(1000) }}"}},
    {"a": {"__prefect_kind": "workspace_variable", "variable_name": "missing"}},
    {"a": {"__prefect_kind": "none"}},
]


def _prefect(parameters):
    context = HydrationContext(
        workspace_variables=VARIABLES, raise_on_error=True, render_jinja=True, render_workspace_variables=True
    )
    return prefect_hydrate(parameters, context)


class TestHydrationAgreesWithPrefect:
    @pytest.mark.parametrize("parameters", HYDRATION_CASES)
    def test_same_result(self, parameters):
        assert hydrate(parameters, variables=VARIABLES) == _prefect(parameters)

    @pytest.mark.parametrize("parameters", HYDRATION_ERRORS)
    def test_same_error(self, parameters):
        with pytest.raises(PrefectHydrationError) as theirs:
            _prefect(parameters)
        with pytest.raises(HydrationError) as ours:
            hydrate(parameters, variables=VARIABLES)
        assert str(ours.value) == str(theirs.value)


def _run(client, tenant, deployment_id, body=None):
    return client.post(
        f"{tenant.prefix}/deployments/{deployment_id}/create_flow_run", body or {}, format="json"
    )


class TestPlaceholdersWhenARunIsCreated:
    def test_placeholders_in_the_deployment_and_the_run_are_expanded(self, tenant, dev):
        dev.post(f"{tenant.prefix}/variables/", {"name": "region", "value": "eu-west-1"}, format="json")
        deployment = deploy(
            dev,
            tenant,
            make_flow(dev, tenant),
            # As on Prefect's server, a deployment that enforces its schema cannot hold placeholders.
            enforce_parameter_schema=False,
            parameters={"name": {"__prefect_kind": "workspace_variable", "variable_name": "region"}},
        )
        # The deployment keeps its placeholders; the run gets the values.
        assert deployment["parameters"]["name"]["__prefect_kind"] == "workspace_variable"
        response = _run(
            dev,
            tenant,
            deployment["id"],
            {
                "parameters": {
                    "items": {"__prefect_kind": "json", "value": "[1, 2]"},
                    "n": {"__prefect_kind": "json", "value": "4"},
                }
            },
        )
        assert response.status_code == 201, response.content
        run = ClientFlowRun.model_validate(response.json())
        assert run.parameters == {"name": "eu-west-1", "items": [1, 2], "n": 4}
        stored = in_workspace(tenant, lambda: FlowRun.objects.get(id=run.id).parameters)
        assert stored == {"name": "eu-west-1", "items": [1, 2], "n": 4}

    @pytest.mark.parametrize(
        ("placeholder", "detail"),
        [
            (
                {"__prefect_kind": "workspace_variable", "variable_name": "nope"},
                "Variable 'nope' not found in workspace.",
            ),
            ({"__prefect_kind": "json", "value": "{bad"}, "Invalid JSON: Expecting property name"),
            ({"__prefect_kind": "jinja"}, "Missing 'template' key in __prefect object"),
        ],
    )
    def test_a_bad_placeholder_is_400_as_prefect_and_creates_nothing(self, tenant, dev, placeholder, detail):
        deployment = deploy(dev, tenant, make_flow(dev, tenant))
        response = _run(dev, tenant, deployment["id"], {"parameters": {"name": placeholder}})
        assert response.status_code == 400, response.content
        assert response.json()["detail"].startswith(f"Error hydrating flow run parameters: {detail}")
        assert in_workspace(tenant, lambda: FlowRun.objects.count()) == 0

    def test_hydrated_values_are_checked_against_the_schema_409(self, tenant, dev):
        deployment = deploy(dev, tenant, make_flow(dev, tenant))
        response = _run(
            dev, tenant, deployment["id"], {"parameters": {"n": {"__prefect_kind": "json", "value": '"x"'}}}
        )
        assert response.status_code == 409 and "Validation failed for field 'n'" in response.json()["detail"]
        assert in_workspace(tenant, lambda: FlowRun.objects.count()) == 0

    def test_another_workspaces_variables_are_not_seen(self, two_workspaces, api_client):
        a, b = two_workspaces
        b_client = bearer(api_client, b.service_key)
        b_client.post(f"{b.prefix}/variables/", {"name": "secret_region", "value": "b-only"}, format="json")
        a_client = bearer(api_client, a.service_key)
        deployment = deploy(a_client, a, make_flow(a_client, a))
        response = _run(
            a_client,
            a,
            deployment["id"],
            {
                "parameters": {
                    "name": {"__prefect_kind": "workspace_variable", "variable_name": "secret_region"}
                }
            },
        )
        assert response.status_code == 400 and "not found in workspace" in response.json()["detail"]


def _bulk(client, tenant, deployment_id, items):
    return client.post(
        f"{tenant.prefix}/deployments/{deployment_id}/create_flow_run/bulk", items, format="json"
    )


class TestBulkCreate:
    def test_each_item_is_created_or_refused_with_prefects_reason(self, tenant, dev):
        deployment = deploy(dev, tenant, make_flow(dev, tenant))
        items = [
            {"parameters": {"n": 1}, "tags": ["x"]},
            {"parameters": {"n": "seven"}},
            {"parameters": {"name": {"__prefect_kind": "json", "value": "{bad"}}},
            {"work_queue_name": "elsewhere"},
            {"name": "named", "state": {"type": "PENDING", "name": "Pending"}},
        ]
        response = _bulk(dev, tenant, deployment["id"], items)
        assert response.status_code == 200, response.content
        results = FlowRunBulkCreateResponse.model_validate(response.json()).results
        assert [r.status for r in results] == ["CREATED", "FAILED", "FAILED", "FAILED", "CREATED"]
        assert results[1].error.startswith("Parameter validation failed: Validation failed for field 'n'")
        assert results[2].error.startswith("Invalid JSON: ")
        assert results[3].error == (
            "Cannot create flow run in work queue elsewhere because deployment is not associated with a work pool."
        )
        runs = in_workspace(tenant, lambda: {r.id: r for r in FlowRun.objects.all()})
        assert set(runs) == {results[0].flow_run_id, results[4].flow_run_id}
        first = runs[results[0].flow_run_id]
        assert first.parameters == {"name": "world", "n": 1} and set(first.tags) == {"a", "x"}
        assert first.state_type == "SCHEDULED" and runs[results[4].flow_run_id].state_type == "PENDING"

    def test_empty_more_than_100_and_unknown(self, tenant, dev):
        deployment = deploy(dev, tenant, make_flow(dev, tenant))
        assert _bulk(dev, tenant, deployment["id"], []).json() == {"results": []}
        too_many = _bulk(dev, tenant, deployment["id"], [{}] * 101)
        assert (
            too_many.status_code == 400
            and too_many.json()["detail"] == "Cannot create more than 100 flow runs at once."
        )
        assert _bulk(dev, tenant, str(uuid.uuid4()), []).status_code == 404
        assert _bulk(dev, tenant, deployment["id"], {"not": "a list"}).status_code == 422
        assert _bulk(dev, tenant, deployment["id"], [{"parameters": []}]).status_code == 422
        assert in_workspace(tenant, lambda: FlowRun.objects.count()) == 0

    @pytest.mark.parametrize(
        ("role", "allowed"), [("viewer", False), ("worker", False), ("runner", True), ("developer", True)]
    )
    def test_scopes(self, tenant, dev, role_client, role, allowed):
        deployment = deploy(dev, tenant, make_flow(dev, tenant))
        response = _bulk(role_client(role), tenant, deployment["id"], [{}])
        assert response.status_code == (200 if allowed else 403), response.content

    def test_another_workspaces_deployment_is_404(self, two_workspaces, api_client):
        a, b = two_workspaces
        b_client = bearer(api_client, b.service_key)
        theirs = deploy(b_client, b, make_flow(b_client, b))
        a_client = bearer(api_client, a.service_key)
        assert _bulk(a_client, a, theirs["id"], [{}]).status_code == 404
        assert in_workspace(b, lambda: FlowRun.objects.count()) == 0


def _schedule(client, tenant, deployment_id, body=None):
    body = {} if body is None else body
    return client.post(f"{tenant.prefix}/deployments/{deployment_id}/schedule", body, format="json")


class TestScheduleRuns:
    def test_runs_from_the_active_schedules_even_when_paused_and_only_once(self, tenant, dev, settings):
        settings.SCHEDULER_MIN_RUNS = 3
        deployment = deploy(
            dev,
            tenant,
            make_flow(dev, tenant),
            paused=True,
            schedules=[hourly(parameters={"n": 9}), hourly(active=False, slug="off")],
        )
        response = _schedule(dev, tenant, deployment["id"], {"max_runs": 3})
        assert response.status_code == 200 and response.content == b"null"
        runs = in_workspace(tenant, lambda: list(FlowRun.objects.order_by("next_scheduled_start_time")))
        assert len(runs) == 3
        assert all(
            r.auto_scheduled and r.state_type == "SCHEDULED" and r.parameters == {"name": "world", "n": 9}
            for r in runs
        )
        assert runs[0].tags[0] == "auto-scheduled"
        # The scheduler's idempotency keys: asking again makes nothing new.
        assert _schedule(dev, tenant, deployment["id"], {"max_runs": 3}).status_code == 200
        assert in_workspace(tenant, lambda: FlowRun.objects.count()) == 3

    def test_a_backfill_from_the_past(self, tenant, dev):
        deployment = deploy(dev, tenant, make_flow(dev, tenant), schedules=[hourly()])
        start = "2025-01-01T00:00:00Z"
        end = "2025-01-01T05:30:00Z"
        # Enough runs wanted that the end time is what stops them (Prefect's order of the bounds).
        body = {"start_time": start, "end_time": end, "min_time": 0, "min_runs": 100}
        response = _schedule(dev, tenant, deployment["id"], body)
        assert response.status_code == 200, response.content
        times = in_workspace(
            tenant,
            lambda: list(
                FlowRun.objects.order_by("next_scheduled_start_time").values_list(
                    "next_scheduled_start_time", flat=True
                )
            ),
        )
        assert times == [dt.datetime(2025, 1, 1, hour, tzinfo=dt.UTC) for hour in range(6)]

    def test_min_runs_and_min_time(self, tenant, dev):
        deployment = deploy(dev, tenant, make_flow(dev, tenant), schedules=[hourly()])
        body = {"start_time": "2025-01-01T00:00:00Z", "min_runs": 2, "min_time": 4 * 3600, "max_runs": 50}
        assert _schedule(dev, tenant, deployment["id"], body).status_code == 200
        # At least two runs, and on until start + 4 hours: 00:00 … 04:00.
        assert in_workspace(tenant, lambda: FlowRun.objects.count()) == 5

    @pytest.mark.parametrize(
        "body",
        [
            {"start_time": "soon"},
            {"min_time": "long"},
            {"max_runs": "x"},
            {"start_time": "9999-12-31T00:00:00Z"},
            [],
        ],
    )
    def test_a_bad_body_is_422_and_schedules_nothing(self, tenant, dev, body):
        deployment = deploy(dev, tenant, make_flow(dev, tenant), schedules=[hourly()])
        assert _schedule(dev, tenant, deployment["id"], body).status_code == 422
        assert in_workspace(tenant, lambda: FlowRun.objects.count()) == 0

    @pytest.mark.parametrize(
        ("role", "allowed"), [("viewer", False), ("runner", False), ("worker", False), ("developer", True)]
    )
    def test_scopes(self, tenant, dev, role_client, role, allowed):
        deployment = deploy(dev, tenant, make_flow(dev, tenant), schedules=[hourly()])
        response = _schedule(role_client(role), tenant, deployment["id"], {"max_runs": 1})
        assert response.status_code == (200 if allowed else 403), response.content
        assert in_workspace(tenant, lambda: FlowRun.objects.count()) == (1 if allowed else 0)

    def test_a_missing_deployment_answers_null_as_prefect_does(self, tenant, dev):
        # Prefect's schedule_runs finds no deployment and schedules nothing: 200 null.
        response = _schedule(dev, tenant, str(uuid.uuid4()), {"max_runs": 1})
        assert (response.status_code, response.content) == (200, b"null")
        assert _schedule(dev, tenant, "not-a-uuid").status_code == 404  # no route matches in Prefect

    def test_another_workspaces_deployment_is_as_missing(self, two_workspaces, api_client):
        a, b = two_workspaces
        b_client = bearer(api_client, b.service_key)
        theirs = deploy(b_client, b, make_flow(b_client, b), schedules=[hourly()])
        a_client = bearer(api_client, a.service_key)
        response = _schedule(a_client, a, theirs["id"])
        assert (response.status_code, response.content) == (200, b"null")
        assert in_workspace(b, lambda: FlowRun.objects.count()) == 0


class TestWorkQueueCheck:
    def test_the_queues_whose_filter_would_pick_the_deployment(self, tenant, dev):
        deployment = deploy(dev, tenant, make_flow(dev, tenant), tags=["a", "b"])
        names = {}
        for name, queue_filter in [
            ("plain", None),
            ("tagged", {"tags": ["a"]}),
            ("other-tags", {"tags": ["z"]}),
            ("empty", {"tags": [], "deployment_ids": []}),
            ("this-one", {"tags": None, "deployment_ids": [deployment["id"]]}),
            ("another-one", {"deployment_ids": [str(uuid.uuid4())]}),
        ]:
            response = dev.post(
                f"{tenant.prefix}/work_queues/", {"name": name, "filter": queue_filter}, format="json"
            )
            assert response.status_code == 201, response.content
            names[name] = response.json()["id"]
        response = dev.get(f"{tenant.prefix}/deployments/{deployment['id']}/work_queue_check")
        assert response.status_code == 200, response.content
        queues = [CoreWorkQueue.model_validate(q) for q in response.json()]
        assert [q.name for q in queues] == ["default", "plain", "tagged", "empty", "this-one"]
        assert "status" not in response.json()[0]

    @pytest.mark.parametrize("role", ["viewer", "worker"])
    def test_a_viewer_may_check(self, tenant, dev, role_client, role):
        deployment = deploy(dev, tenant, make_flow(dev, tenant))
        assert (
            role_client(role)
            .get(f"{tenant.prefix}/deployments/{deployment['id']}/work_queue_check")
            .status_code
            == 200
        )

    def test_another_workspaces_deployment_is_404(self, two_workspaces):
        a, b = two_workspaces
        b_client = bearer(APIClient(), b.service_key)
        theirs = deploy(b_client, b, make_flow(b_client, b))
        a_client = bearer(APIClient(), a.service_key)
        assert a_client.get(f"{a.prefix}/deployments/{theirs['id']}/work_queue_check").status_code == 404
        assert b_client.get(f"{b.prefix}/deployments/{theirs['id']}/work_queue_check").status_code == 200


class TestPlaceholdersWhenADeploymentIsUpdated:
    def test_a_patch_stores_the_expanded_parameters(self, tenant, dev):
        dev.post(f"{tenant.prefix}/variables/", {"name": "who", "value": "ops"}, format="json")
        deployment = deploy(dev, tenant, make_flow(dev, tenant))
        url = f"{tenant.prefix}/deployments/{deployment['id']}"
        body = {"parameters": {"name": {"__prefect_kind": "workspace_variable", "variable_name": "who"}}}
        assert dev.patch(url, body, format="json").status_code == 204
        assert dev.get(url).json()["parameters"] == {"name": "ops"}

    def test_a_bad_placeholder_is_400_and_changes_nothing(self, tenant, dev):
        deployment = deploy(dev, tenant, make_flow(dev, tenant))
        url = f"{tenant.prefix}/deployments/{deployment['id']}"
        body = {"parameters": {"name": {"__prefect_kind": "json", "value": "{"}}, "description": "changed"}
        response = dev.patch(url, body, format="json")
        assert response.status_code == 400
        assert response.json()["detail"].startswith("Error hydrating deployment parameters: Invalid JSON")
        after = dev.get(url).json()
        assert after["parameters"] == {"name": "world"} and after["description"] != "changed"

    def test_expanded_values_are_checked_against_the_schema_409(self, tenant, dev):
        deployment = deploy(dev, tenant, make_flow(dev, tenant))
        url = f"{tenant.prefix}/deployments/{deployment['id']}"
        body = {"parameters": {"n": {"__prefect_kind": "json", "value": '"x"'}}}
        response = dev.patch(url, body, format="json")
        assert response.status_code == 409 and "Validation failed for field 'n'" in response.json()["detail"]
