"""``deployments/bulk_delete`` and ``flows/bulk_delete`` (Prefect's ``delete_deployments`` and
``delete_flows``): what a single delete deletes, for every object the filter matches up to
``limit``; audited like single deletes; refused bodies write nothing; scopes; another workspace's
objects are never touched. Answers are checked against Prefect's own response models."""

from __future__ import annotations

import uuid

import pytest
from prefect.server.schemas.responses import DeploymentBulkDeleteResponse, FlowBulkDeleteResponse

from audit.models import AuditLogEntry
from orchestration.models import ConcurrencyLimitV2, Deployment, Event, Flow, FlowRun
from tests.conftest import bearer
from tests.orchestration.deployments_more.helpers import deploy, hourly, in_workspace, make_flow

pytestmark = pytest.mark.django_db


def _bulk(client, tenant, what: str, body):
    return client.post(f"{tenant.prefix}/{what}/bulk_delete", body, format="json")


class TestDeploymentsBulkDelete:
    def test_deletes_what_the_filter_matches_with_what_belongs_to_them(self, tenant, dev):
        flow_id = make_flow(dev, tenant)
        first = deploy(dev, tenant, flow_id, name="one", concurrency_limit=2, schedules=[hourly()])
        second = deploy(dev, tenant, flow_id, name="two")
        kept = deploy(dev, tenant, flow_id, name="kept")
        # A scheduled run of each: deleting a deployment removes the runs that never ran.
        for deployment in (first, second, kept):
            run = dev.post(
                f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json"
            )
            assert run.status_code == 201, run.content
        assert in_workspace(tenant, lambda: ConcurrencyLimitV2.objects.count()) == 1

        response = _bulk(dev, tenant, "deployments", {"deployments": {"name": {"any_": ["one", "two"]}}})

        assert response.status_code == 200, response.content
        answer = DeploymentBulkDeleteResponse.model_validate(response.json())
        assert {str(i) for i in answer.deleted} == {first["id"], second["id"]}
        assert in_workspace(tenant, lambda: list(Deployment.objects.values_list("name", flat=True))) == [
            "kept"
        ]
        assert in_workspace(
            tenant, lambda: list(FlowRun.objects.values_list("deployment_id", flat=True))
        ) == [uuid.UUID(kept["id"])]
        assert in_workspace(tenant, lambda: ConcurrencyLimitV2.objects.count()) == 0
        # The same audit record and event a single delete writes, one per deployment.
        audited = AuditLogEntry.objects.filter(api_name="deployment.deleted", workspace=tenant.workspace)
        assert sorted(audited.values_list("target_id", flat=True)) == sorted([first["id"], second["id"]])
        deleted_events = in_workspace(
            tenant,
            lambda: list(
                Event.objects.filter(event="prefect.deployment.deleted").values_list("resource_id", flat=True)
            ),
        )
        assert sorted(deleted_events) == sorted(f"prefect.deployment.{d['id']}" for d in (first, second))

    def test_limit_caps_how_many_and_defaults_to_50(self, tenant, dev):
        flow_id = make_flow(dev, tenant)
        for index in range(3):
            deploy(dev, tenant, flow_id, name=f"d{index}")
        response = _bulk(dev, tenant, "deployments", {"limit": 2})
        assert response.status_code == 200 and len(response.json()["deleted"]) == 2
        # By name, as Prefect reads them: the first two went.
        assert in_workspace(tenant, lambda: list(Deployment.objects.values_list("name", flat=True))) == ["d2"]
        assert _bulk(dev, tenant, "deployments", {}).json()["deleted"] != []
        assert _bulk(dev, tenant, "deployments", {}).json() == {"deleted": []}

    @pytest.mark.parametrize(
        "body", [{"limit": 0}, {"limit": 51}, {"limit": "many"}, {"deployments": {"name": 5}}, []]
    )
    def test_a_bad_body_is_422_and_deletes_nothing(self, tenant, dev, body):
        deploy(dev, tenant, make_flow(dev, tenant))
        response = _bulk(dev, tenant, "deployments", body)
        assert response.status_code == 422, response.content
        assert in_workspace(tenant, lambda: Deployment.objects.count()) == 1

    def test_a_freed_plan_slot_can_be_taken_again(self, tenant, dev):
        tenant.account.plan = "hobby"  # five deployments
        tenant.account.save(update_fields=["plan"])
        flow_id = make_flow(dev, tenant)
        for index in range(5):
            deploy(dev, tenant, flow_id, name=f"d{index}")
        refused = dev.post(
            f"{tenant.prefix}/deployments/", {"name": "sixth", "flow_id": flow_id}, format="json"
        )
        assert refused.status_code == 403, refused.content
        assert (
            _bulk(dev, tenant, "deployments", {"deployments": {"name": {"any_": ["d0"]}}}).status_code == 200
        )
        deploy(dev, tenant, flow_id, name="sixth")
        assert (
            dev.post(
                f"{tenant.prefix}/deployments/", {"name": "seventh", "flow_id": flow_id}, format="json"
            ).status_code
            == 403
        )

    @pytest.mark.parametrize(
        ("role", "allowed"), [("viewer", False), ("runner", False), ("worker", False), ("developer", True)]
    )
    def test_scopes(self, tenant, dev, role_client, role, allowed):
        deploy(dev, tenant, make_flow(dev, tenant))
        response = _bulk(role_client(role), tenant, "deployments", {})
        assert response.status_code == (200 if allowed else 403), response.content
        assert in_workspace(tenant, lambda: Deployment.objects.count()) == (0 if allowed else 1)

    def test_another_workspaces_deployments_are_untouched(self, two_workspaces, api_client):
        a, b = two_workspaces
        b_client = bearer(api_client, b.service_key)
        theirs = deploy(b_client, b, make_flow(b_client, b))
        a_client = bearer(api_client, a.service_key)
        response = _bulk(a_client, a, "deployments", {"deployments": {"id": {"any_": [theirs["id"]]}}})
        assert response.status_code == 200 and response.json() == {"deleted": []}
        assert in_workspace(b, lambda: Deployment.objects.count()) == 1


class TestFlowsBulkDelete:
    def test_deletes_flows_with_their_deployments_and_runs(self, tenant, dev):
        etl = make_flow(dev, tenant, "etl")
        other = make_flow(dev, tenant, "other")
        deployment = deploy(dev, tenant, etl, concurrency_limit=1)
        deploy(dev, tenant, other, name="stays")
        dev.post(f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json")
        dev.post(
            f"{tenant.prefix}/flow_runs/", {"flow_id": etl, "state": {"type": "COMPLETED"}}, format="json"
        )

        response = _bulk(dev, tenant, "flows", {"flows": {"name": {"any_": ["etl"]}}})

        assert response.status_code == 200, response.content
        assert [str(i) for i in FlowBulkDeleteResponse.model_validate(response.json()).deleted] == [etl]
        assert in_workspace(tenant, lambda: list(Flow.objects.values_list("name", flat=True))) == ["other"]
        assert in_workspace(tenant, lambda: list(Deployment.objects.values_list("name", flat=True))) == [
            "stays"
        ]
        assert in_workspace(tenant, lambda: FlowRun.objects.filter(flow_id=etl).count()) == 0
        assert in_workspace(tenant, lambda: ConcurrencyLimitV2.objects.count()) == 0
        assert list(
            AuditLogEntry.objects.filter(
                api_name="deployment.deleted", workspace=tenant.workspace
            ).values_list("target_id", flat=True)
        ) == [deployment["id"]]

    def test_the_single_delete_takes_the_deployments_the_same_way(self, tenant, dev):
        etl = make_flow(dev, tenant)
        deployment = deploy(dev, tenant, etl, concurrency_limit=1)
        assert dev.delete(f"{tenant.prefix}/flows/{etl}").status_code == 204
        assert in_workspace(
            tenant, lambda: (Deployment.objects.count(), ConcurrencyLimitV2.objects.count())
        ) == (0, 0)
        assert AuditLogEntry.objects.filter(
            api_name="deployment.deleted", target_id=deployment["id"]
        ).exists()
        assert dev.delete(f"{tenant.prefix}/flows/{etl}").status_code == 404

    @pytest.mark.parametrize("body", [{"limit": 0}, {"limit": 51}, {"flows": {"id": {"any_": ["nope"]}}}])
    def test_a_bad_body_is_422_and_deletes_nothing(self, tenant, dev, body):
        make_flow(dev, tenant)
        assert _bulk(dev, tenant, "flows", body).status_code == 422
        assert in_workspace(tenant, lambda: Flow.objects.count()) == 1

    @pytest.mark.parametrize(
        ("role", "allowed"), [("viewer", False), ("runner", False), ("worker", False), ("developer", True)]
    )
    def test_scopes(self, tenant, dev, role_client, role, allowed):
        make_flow(dev, tenant)
        response = _bulk(role_client(role), tenant, "flows", {})
        assert response.status_code == (200 if allowed else 403), response.content
        assert in_workspace(tenant, lambda: Flow.objects.count()) == (0 if allowed else 1)

    def test_another_workspaces_flows_are_untouched(self, two_workspaces, api_client):
        a, b = two_workspaces
        b_client = bearer(api_client, b.service_key)
        theirs = make_flow(b_client, b)
        a_client = bearer(api_client, a.service_key)
        response = _bulk(a_client, a, "flows", {"flows": {"id": {"any_": [theirs]}}})
        assert response.status_code == 200 and response.json() == {"deleted": []}
        assert in_workspace(b, lambda: Flow.objects.count()) == 1
