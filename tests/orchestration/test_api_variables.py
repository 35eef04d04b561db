from __future__ import annotations

import pytest

from orchestration.models import Variable

pytestmark = pytest.mark.django_db


def test_crud_by_id_and_name(tenant, dev):
    p = tenant.prefix
    created = dev.post(
        f"{p}/variables/", {"name": "db_url", "value": {"host": "x"}, "tags": ["prod"]}, format="json"
    )
    assert created.status_code == 201
    var = created.json()
    assert set(var) == {"id", "created", "updated", "name", "value", "tags"}
    assert dev.post(f"{p}/variables/", {"name": "db_url", "value": 1}, format="json").status_code == 409
    assert dev.get(f"{p}/variables/{var['id']}").json()["value"] == {"host": "x"}
    assert dev.get(f"{p}/variables/name/db_url").json()["id"] == var["id"]
    assert dev.patch(f"{p}/variables/name/db_url", {"value": 42}, format="json").status_code == 204
    assert dev.get(f"{p}/variables/{var['id']}").json()["value"] == 42
    assert dev.patch(f"{p}/variables/{var['id']}", {"name": "dsn"}, format="json").status_code == 204
    assert dev.get(f"{p}/variables/name/dsn").json()["tags"] == ["prod"]
    assert dev.delete(f"{p}/variables/name/dsn").status_code == 204
    assert dev.get(f"{p}/variables/{var['id']}").status_code == 404
    assert dev.get(f"{p}/variables/name/dsn").json() == {"detail": "Variable not found."}


def test_rename_onto_an_existing_name_is_409_and_changes_nothing(tenant, dev):
    p = tenant.prefix
    dev.post(f"{p}/variables/", {"name": "a", "value": 1}, format="json")
    dev.post(f"{p}/variables/", {"name": "b", "value": 2}, format="json")
    assert dev.patch(f"{p}/variables/name/b", {"name": "a"}, format="json").status_code == 409
    assert dev.get(f"{p}/variables/name/b").json()["value"] == 2


def test_filter_and_count(tenant, dev):
    p = tenant.prefix
    for name, tags in (("alpha", ["x"]), ("beta", []), ("gamma", ["x", "y"])):
        dev.post(f"{p}/variables/", {"name": name, "value": name, "tags": tags}, format="json")
    names = lambda body: [v["name"] for v in dev.post(f"{p}/variables/filter", body, format="json").json()]  # noqa: E731
    assert names({}) == ["alpha", "beta", "gamma"]
    assert names({"variables": {"tags": {"all_": ["x", "y"]}}}) == ["gamma"]
    assert names({"variables": {"tags": {"is_null_": True}}}) == ["beta"]
    assert names({"variables": {"name": {"like_": "a"}}, "sort": "NAME_DESC"}) == ["gamma", "beta", "alpha"]
    assert (
        dev.post(f"{p}/variables/count", {"variables": {"name": {"any_": ["beta"]}}}, format="json").json()
        == 1
    )


@pytest.mark.parametrize("body", [{"name": "Has Caps", "value": 1}, {"name": "", "value": 1}, {"value": 1}])
def test_invalid_names_are_422(tenant, dev, body):
    assert dev.post(f"{tenant.prefix}/variables/", body, format="json").status_code == 422
    assert not Variable.objects.for_workspace(tenant.workspace.id).exists()


def test_scopes(tenant, role_client):
    viewer, worker = role_client("viewer"), role_client("worker")
    assert (
        viewer.post(f"{tenant.prefix}/variables/", {"name": "x", "value": 1}, format="json").status_code
        == 403
    )
    assert worker.post(f"{tenant.prefix}/variables/filter", {}, format="json").status_code == 200
