from __future__ import annotations

import uuid

import pytest

from orchestration.models import Artifact, Log

pytestmark = pytest.mark.django_db


def _log(run_id, n, task_run_id=None, level=20):
    return {"name": "prefect.flow_runs", "level": level, "message": f"line {n}",
            "timestamp": f"2026-11-25T08:00:{n:02d}.000000Z", "flow_run_id": str(run_id),
            "task_run_id": str(task_run_id) if task_run_id else None}  # fmt: skip


class TestLogs:
    def test_batch_create_and_filter(self, tenant, dev):
        run, task = uuid.uuid4(), uuid.uuid4()
        batch = [_log(run, n, task if n % 2 else None, level=40 if n == 3 else 20) for n in range(6)]
        response = dev.post(f"{tenant.prefix}/logs/", batch, format="json")
        assert response.status_code == 201 and response.json() is None
        assert Log.objects.for_workspace(tenant.workspace.id).count() == 6
        read = lambda body: dev.post(f"{tenant.prefix}/logs/filter", body, format="json").json()  # noqa: E731
        assert [entry["message"] for entry in read({})] == [f"line {n}" for n in range(6)]
        assert [entry["message"] for entry in read({"sort": "TIMESTAMP_DESC", "limit": 2})] == [
            "line 5",
            "line 4",
        ]
        assert len(read({"logs": {"task_run_id": {"is_null_": True}}})) == 3
        assert [e["message"] for e in read({"logs": {"level": {"ge_": 40}}})] == ["line 3"]
        assert (
            len(
                read(
                    {
                        "logs": {
                            "flow_run_id": {"any_": [str(run)]},
                            "timestamp": {"after_": "2026-11-25T08:00:04Z"},
                        }
                    }
                )
            )
            == 2
        )
        assert [e["message"] for e in read({"logs": {"text": {"query": "line -1 -2 -3 -4 -5"}}})] == [
            "line 0"
        ]
        entry = read({"limit": 1})[0]
        assert set(entry) == {
            "id",
            "created",
            "updated",
            "name",
            "level",
            "message",
            "timestamp",
            "flow_run_id",
            "task_run_id",
            "worker_id",
        }

    def test_one_bad_item_writes_nothing(self, tenant, dev):
        batch = [_log(uuid.uuid4(), 1), {"name": "x", "level": "loud", "message": "m", "timestamp": "nope"}]
        assert dev.post(f"{tenant.prefix}/logs/", batch, format="json").status_code == 422
        assert not Log.objects.for_workspace(tenant.workspace.id).exists()

    def test_not_a_list_is_422(self, tenant, dev):
        assert dev.post(f"{tenant.prefix}/logs/", {"name": "x"}, format="json").status_code == 422

    def test_viewer_cannot_write_logs(self, tenant, role_client):
        assert role_client("viewer").post(f"{tenant.prefix}/logs/", [], format="json").status_code == 403


class TestArtifacts:
    def test_create_filter_latest(self, tenant, dev):
        p = tenant.prefix
        run = str(uuid.uuid4())
        for n in range(3):
            body = {"key": "report", "type": "markdown", "data": f"v{n}", "flow_run_id": run}
            assert dev.post(f"{p}/artifacts/", body, format="json").status_code == 201
        dev.post(f"{p}/artifacts/", {"key": "table", "type": "table", "data": [[1]]}, format="json")
        dev.post(f"{p}/artifacts/", {"type": "result", "data": None}, format="json")
        everything = dev.post(f"{p}/artifacts/filter", {}, format="json").json()
        assert len(everything) == 5 and {"metadata_", "key", "data"} <= set(everything[0])
        latest = dev.post(f"{p}/artifacts/latest/filter", {"sort": "KEY_ASC"}, format="json").json()
        assert [(a["key"], a["data"]) for a in latest] == [("report", "v2"), ("table", [[1]])]
        assert latest[0]["latest_id"] == latest[0]["id"]
        assert dev.get(f"{p}/artifacts/report/latest").json()["data"] == "v2"
        by_run = dev.post(
            f"{p}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run]}}}, format="json"
        )
        assert len(by_run.json()) == 3
        assert (
            dev.post(f"{p}/artifacts/count", {"artifacts": {"key": {"exists_": False}}}, format="json").json()
            == 1
        )

    def test_update_and_delete(self, tenant, dev):
        p = tenant.prefix
        artifact = dev.post(f"{p}/artifacts/", {"key": "k", "data": 1}, format="json").json()
        assert dev.patch(f"{p}/artifacts/{artifact['id']}", {"data": 2}, format="json").status_code == 204
        assert dev.get(f"{p}/artifacts/{artifact['id']}").json()["data"] == 2
        assert dev.delete(f"{p}/artifacts/{artifact['id']}").status_code == 204
        assert dev.delete(f"{p}/artifacts/{artifact['id']}").status_code == 404

    def test_bad_key_is_422(self, tenant, dev):
        assert dev.post(f"{tenant.prefix}/artifacts/", {"key": "Bad Key"}, format="json").status_code == 422
        assert not Artifact.objects.for_workspace(tenant.workspace.id).exists()
