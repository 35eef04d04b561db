"""The meta routes (hello, ready, version, admin settings and storage, collections) and saved
searches, per workspace."""

from __future__ import annotations

import uuid

import pytest

from core.errors import NotFound
from orchestration.models import BlockSchema, ResultStorageDefault, SavedSearch
from orchestration.schemas.saved_searches import ResultStorageUpdate
from orchestration.services.blocks import system_blocks_ensure
from orchestration.services.saved_searches import result_storage_set
from tenants.scoping import workspace_scope
from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def _block(tenant, dev, slug="local-file-system", name="store", data=None) -> str:
    with workspace_scope(tenant.workspace.id):
        system_blocks_ensure()
        schema = BlockSchema.objects.filter(block_type__slug=slug).first()
    answer = dev.post(
        f"{tenant.prefix}/block_documents/",
        {"name": name, "block_schema_id": str(schema.id), "block_type_id": str(schema.block_type_id),
         "data": data if data is not None else {"basepath": "/tmp/results"}},
        format="json",
    )  # fmt: skip
    assert answer.status_code == 201, answer.content
    return answer.json()["id"]


class TestMeta:
    def test_hello_ready_version(self, tenant, dev):
        p = tenant.prefix
        assert dev.get(f"{p}/hello").json() == "👋"
        assert dev.get(f"{p}/ready").json() == {"message": "OK"}
        assert dev.get(f"{p}/version").json() == "0.8.4"
        assert dev.get(f"{p}/admin/version").json().startswith("3.9")

    def test_settings_hold_no_secret(self, tenant, dev, settings):
        answer = dev.get(f"{tenant.prefix}/admin/settings")
        assert answer.status_code == 200
        text = answer.content.decode()
        assert settings.SECRET_KEY not in text and tenant.service_key not in text
        assert "key" not in text.lower() and "password" not in text.lower()
        assert answer.json()["api"]["default_limit"] == 200

    def test_worker_metadata_is_served_offline_as_prefect_ships_it(self, tenant, dev):
        data = dev.get(f"{tenant.prefix}/collections/views/aggregate-worker-metadata").json()
        assert data["prefect"]["process"]["type"] == "process"
        assert "prefect-agent" not in data["prefect"]
        assert "kubernetes" in {w["type"] for w in data["prefect-kubernetes"].values()}
        missing = dev.get(f"{tenant.prefix}/collections/views/demo-flows")
        assert missing.status_code == 404 and missing.json() == {
            "detail": "Requested content missing for view demo-flows"
        }
        unknown = dev.get(f"{tenant.prefix}/collections/views/nope")
        assert unknown.json() == {"detail": "View nope not found in registry"}

    def test_scopes(self, tenant, role_client):
        viewer = role_client("viewer")
        assert viewer.get(f"{tenant.prefix}/hello").status_code == 200
        # Prefect's UI reads the settings on its pages whatever the role; they hold no secret.
        assert viewer.get(f"{tenant.prefix}/admin/settings").status_code == 200


class TestResultStorage:
    def test_set_read_clear(self, tenant, dev, role_client):
        p = tenant.prefix
        block_id = _block(tenant, dev)
        assert dev.get(f"{p}/admin/storage").json() == {"default_result_storage_block_id": None}
        # Setting it is a workspace setting: a Developer may not, an Owner may.
        assert (
            dev.put(
                f"{p}/admin/storage", {"default_result_storage_block_id": block_id}, format="json"
            ).status_code
            == 403
        )
        owner = role_client("owner")
        answer = owner.put(f"{p}/admin/storage", {"default_result_storage_block_id": block_id}, format="json")
        assert answer.status_code == 200 and answer.json() == {"default_result_storage_block_id": block_id}
        assert owner.get(f"{p}/admin/storage").json() == {"default_result_storage_block_id": block_id}
        assert owner.delete(f"{p}/admin/storage").status_code == 204
        assert owner.get(f"{p}/admin/storage").json() == {"default_result_storage_block_id": None}
        assert owner.delete(f"{p}/admin/storage").status_code == 204

    def test_refusals_store_nothing(self, tenant, dev, role_client):
        p = tenant.prefix
        secret_id = _block(tenant, dev, slug="secret", name="s", data={"value": "x"})
        owner = role_client("owner")
        cases = [
            ({"default_result_storage_block_id": str(uuid.uuid4())}, 404),
            ({"default_result_storage_block_id": secret_id}, 422),  # cannot write paths
            ({"default_result_storage_block_id": "nope"}, 422),
            ({}, 422),
        ]
        for payload, status in cases:
            answer = owner.put(f"{p}/admin/storage", payload, format="json")
            assert answer.status_code == status, (payload, answer.content)
        assert not ResultStorageDefault.objects.for_workspace(tenant.workspace.id).exists()

    def test_another_workspaces_block_is_404(self, two_workspaces, api_client):
        a, b = two_workspaces
        block_id = _block(b, bearer(api_client, b.service_key))
        # The service the PUT calls (an Owner's key would only add the gate in front of it).
        with workspace_scope(a.workspace.id), pytest.raises(NotFound):
            result_storage_set(data=ResultStorageUpdate(default_result_storage_block_id=block_id))
        assert not ResultStorageDefault.objects.for_workspace(a.workspace.id).exists()


class TestSavedSearches:
    FILTER = {
        "object": "flow_run",
        "property": "state",
        "type": "state",
        "operation": "or",
        "value": ["COMPLETED"],
    }

    def test_put_creates_then_replaces_by_name(self, tenant, dev):
        url = f"{tenant.prefix}/saved_searches/"
        first = dev.put(url, {"name": "done", "filters": [self.FILTER]}, format="json")
        assert first.status_code == 201
        data = first.json()
        assert set(data) == {"id", "created", "updated", "name", "filters"} and data["filters"] == [
            self.FILTER
        ]
        again = dev.put(url, {"name": "done", "filters": []}, format="json")
        assert again.status_code == 200 and again.json()["id"] == data["id"] and again.json()["filters"] == []
        assert dev.get(f"{url}{data['id']}").json()["filters"] == []
        dev.put(url, {"name": "another"}, format="json")
        listed = dev.post(f"{url}filter", {}, format="json").json()
        assert [s["name"] for s in listed] == ["another", "done"]
        assert [
            s["name"] for s in dev.post(f"{url}filter", {"offset": 1, "limit": 1}, format="json").json()
        ] == ["done"]
        assert dev.delete(f"{url}{data['id']}").status_code == 204
        assert dev.get(f"{url}{data['id']}").json() == {"detail": "Saved search not found"}
        assert dev.delete(f"{url}{data['id']}").status_code == 404

    @pytest.mark.parametrize(
        "payload",
        [
            {},
            {"name": 5},
            {"name": "x", "filters": [{"object": "x"}]},
            {"name": "x", "extra": 1},
            {"name": "x", "filters": "x"},
        ],
    )
    def test_invalid_bodies_are_422(self, tenant, dev, payload):
        assert dev.put(f"{tenant.prefix}/saved_searches/", payload, format="json").status_code == 422
        assert not SavedSearch.objects.for_workspace(tenant.workspace.id).exists()

    def test_scopes_and_tenancy(self, two_workspaces, api_client):
        a, b = two_workspaces
        as_a = bearer(api_client, a.service_key)
        created = as_a.put(f"{a.prefix}/saved_searches/", {"name": "mine"}, format="json").json()
        as_b = bearer(api_client, b.service_key)
        assert as_b.get(f"{b.prefix}/saved_searches/{created['id']}").status_code == 404
        assert as_b.delete(f"{b.prefix}/saved_searches/{created['id']}").status_code == 404
        assert as_b.post(f"{b.prefix}/saved_searches/filter", {}, format="json").json() == []
        assert SavedSearch.objects.for_workspace(a.workspace.id).count() == 1

    def test_viewers_read_but_do_not_write(self, tenant, dev, role_client):
        created = dev.put(f"{tenant.prefix}/saved_searches/", {"name": "mine"}, format="json").json()
        viewer = role_client("viewer")
        assert viewer.get(f"{tenant.prefix}/saved_searches/{created['id']}").status_code == 200
        assert viewer.put(f"{tenant.prefix}/saved_searches/", {"name": "v"}, format="json").status_code == 403
        assert viewer.delete(f"{tenant.prefix}/saved_searches/{created['id']}").status_code == 403
