from __future__ import annotations

import uuid

import pytest

from orchestration.models import Flow

pytestmark = pytest.mark.django_db


class TestFlowCreate:
    def test_upsert_by_name(self, tenant, dev):
        first = dev.post(
            f"{tenant.prefix}/flows/", {"name": "etl", "tags": ["a"], "labels": {}}, format="json"
        )
        second = dev.post(f"{tenant.prefix}/flows/", {"name": "etl", "tags": [], "labels": {}}, format="json")
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"]
        assert set(first.json()) == {"id", "created", "updated", "name", "tags", "labels"}
        assert Flow.objects.for_workspace(tenant.workspace.id).count() == 1

    def test_same_name_in_two_workspaces_is_two_flows(self, two_workspaces, api_client):
        from tests.conftest import bearer

        a, b = two_workspaces
        ids = [
            bearer(api_client, t.service_key)
            .post(f"{t.prefix}/flows/", {"name": "etl"}, format="json")
            .json()["id"]
            for t in (a, b)
        ]
        assert ids[0] != ids[1]

    @pytest.mark.parametrize(
        "body", [{}, {"name": ""}, {"name": 5}, {"name": "a/b"}, {"name": "x", "tags": "t"}]
    )
    def test_bad_bodies_are_422(self, tenant, dev, body):
        response = dev.post(f"{tenant.prefix}/flows/", body, format="json")
        assert response.status_code == 422
        assert "detail" in response.json()
        assert not Flow.objects.for_workspace(tenant.workspace.id).exists()

    def test_malformed_json_is_422(self, tenant, dev):
        response = dev.generic(
            "POST", f"{tenant.prefix}/flows/", "{not json", content_type="application/json"
        )
        assert response.status_code == 422


class TestFlowRead:
    @pytest.fixture
    def flow(self, tenant, dev):
        return dev.post(f"{tenant.prefix}/flows/", {"name": "etl", "tags": ["nightly"]}, format="json").json()

    def test_by_id_and_name(self, tenant, dev, flow):
        assert dev.get(f"{tenant.prefix}/flows/{flow['id']}").json() == flow
        assert dev.get(f"{tenant.prefix}/flows/name/etl").json() == flow
        assert dev.get(f"{tenant.prefix}/flows/name/nope").status_code == 404
        assert dev.get(f"{tenant.prefix}/flows/{uuid.uuid4()}").status_code == 404
        assert dev.get(f"{tenant.prefix}/flows/not-a-uuid").status_code == 404

    def test_filter_and_count(self, tenant, dev, flow):
        dev.post(f"{tenant.prefix}/flows/", {"name": "other"}, format="json")
        names = lambda body: [
            f["name"] for f in dev.post(f"{tenant.prefix}/flows/filter", body, format="json").json()
        ]  # noqa: E731
        assert names({}) == ["etl", "other"]
        assert names({"sort": "NAME_DESC"}) == ["other", "etl"]
        assert names({"flows": {"name": {"like_": "tl"}}}) == ["etl"]
        assert names({"flows": {"tags": {"all_": ["nightly"]}}}) == ["etl"]
        assert names({"flows": {"id": {"any_": [flow["id"]]}}}) == ["etl"]
        assert names({"limit": 1, "offset": 1}) == ["other"]
        count = dev.post(
            f"{tenant.prefix}/flows/count", {"flows": {"name": {"any_": ["etl", "x"]}}}, format="json"
        )
        assert count.json() == 1

    @pytest.mark.parametrize(
        "body",
        [
            {"flows": {"nope": {}}},
            {"flows": {"name": {"bogus_": 1}}},
            {"sort": "SIDEWAYS"},
            {"limit": 10_000},
            {"offset": -1},
            {"flows": {"id": {"any_": ["x"]}}},
        ],
    )
    def test_bad_filters_are_422(self, tenant, dev, flow, body):
        response = dev.post(f"{tenant.prefix}/flows/filter", body, format="json")
        assert response.status_code == 422, response.content
        assert "detail" in response.json()

    def test_delete(self, tenant, dev, flow):
        assert dev.delete(f"{tenant.prefix}/flows/{flow['id']}").status_code == 204
        assert dev.delete(f"{tenant.prefix}/flows/{flow['id']}").status_code == 404


class TestRoles:
    def test_viewer_reads_but_cannot_create(self, tenant, role_client, dev):
        dev.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json")
        viewer = role_client("viewer")
        assert viewer.post(f"{tenant.prefix}/flows/filter", {}, format="json").status_code == 200
        response = viewer.post(f"{tenant.prefix}/flows/", {"name": "new"}, format="json")
        assert response.status_code == 403
        assert "run_flows" in response.json()["detail"]
        assert not Flow.objects.for_workspace(tenant.workspace.id).filter(name="new").exists()

    def test_worker_registers_flows_but_cannot_delete(self, tenant, role_client):
        worker = role_client("worker")
        flow = worker.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json")
        assert flow.status_code == 201
        assert worker.delete(f"{tenant.prefix}/flows/{flow.json()['id']}").status_code == 403
