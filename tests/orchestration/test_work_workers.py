"""Workers: REST heartbeats (the worker channel's fallback), their derived status and the pool's."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone
from prefect.client.schemas.objects import Worker as PrefectWorker

from orchestration.models import Worker
from tests.orchestration.test_work_pools import make_pool, rows

pytestmark = pytest.mark.django_db

WORKER_KEYS = {"id", "created", "updated", "name", "work_pool_id", "last_heartbeat_time",
               "heartbeat_interval_seconds", "status"}  # fmt: skip


@pytest.fixture
def pool(tenant, dev):
    return make_pool(dev, tenant)


def _heartbeat(client, tenant, body, pool="proc-pool"):
    return client.post(f"{tenant.prefix}/work_pools/{pool}/workers/heartbeat", body, format="json")


def _workers(client, tenant, body=None, pool="proc-pool"):
    response = client.post(f"{tenant.prefix}/work_pools/{pool}/workers/filter", body or {}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _age(tenant, name, seconds):
    rows(Worker, tenant).filter(name=name).update(
        last_heartbeat_time=timezone.now() - dt.timedelta(seconds=seconds)
    )


class TestHeartbeat:
    def test_first_heartbeat_creates_the_worker_and_the_pool_is_ready(self, tenant, dev, pool):
        # Exactly what the worker sends on its REST fallback (captured).
        response = _heartbeat(dev, tenant, {"name": "w2", "heartbeat_interval_seconds": 30})
        assert response.status_code == 204 and response.content == b""
        (worker,) = _workers(dev, tenant)
        assert set(worker) == WORKER_KEYS
        PrefectWorker.model_validate(worker)
        assert (worker["name"], worker["status"], worker["heartbeat_interval_seconds"]) == (
            "w2",
            "ONLINE",
            30,
        )
        assert worker["work_pool_id"] == pool["id"]
        assert dev.get(f"{tenant.prefix}/work_pools/proc-pool").json()["status"] == "READY"

    def test_heartbeats_upsert_by_name(self, tenant, dev, pool):
        _heartbeat(dev, tenant, {"name": "w", "heartbeat_interval_seconds": 30})
        first = rows(Worker, tenant).get()
        _age(tenant, "w", 20)
        assert _heartbeat(dev, tenant, {"name": "w"}).status_code == 204
        again = rows(Worker, tenant).get()
        assert again.id == first.id and again.last_heartbeat_time > first.last_heartbeat_time
        # An omitted interval keeps the one known.
        assert again.heartbeat_interval_seconds == 30
        _heartbeat(dev, tenant, {"name": "other"})
        assert rows(Worker, tenant).count() == 2

    def test_return_id_answers_200_with_the_id_as_text(self, tenant, dev, pool):
        # Cloud-mode workers ask for their id and send their metadata (``metadata`` on the wire).
        body = {
            "name": "w",
            "heartbeat_interval_seconds": 30,
            "return_id": True,
            "metadata": {"integrations": []},
        }
        response = _heartbeat(dev, tenant, body)
        assert response.status_code == 200
        worker = rows(Worker, tenant).get()
        assert uuid.UUID(response.content.decode()) == worker.id
        assert worker.metadata == {"integrations": []}
        again = _heartbeat(dev, tenant, {"name": "w", "return_id": True})
        assert uuid.UUID(again.content.decode()) == worker.id

    def test_unknown_pool_is_404_and_bad_bodies_are_422(self, tenant, dev, pool):
        response = _heartbeat(dev, tenant, {"name": "w"}, pool="nope")
        assert response.status_code == 404 and response.json() == {"detail": 'Work pool "nope" not found.'}
        for body in ({}, {"name": ""}, {"name": "w", "heartbeat_interval_seconds": "soon"}, [1]):
            assert _heartbeat(dev, tenant, body).status_code == 422
        assert not rows(Worker, tenant).exists()


class TestStatus:
    def test_online_then_offline_after_interval_times_the_multiple(self, tenant, dev, pool, settings):
        settings.WORKER_OFFLINE_HEARTBEAT_MULTIPLE = 3
        _heartbeat(dev, tenant, {"name": "fast", "heartbeat_interval_seconds": 10})
        _heartbeat(dev, tenant, {"name": "default"})  # no interval: Prefect's 30 s
        _age(tenant, "fast", 29)
        _age(tenant, "default", 89)
        assert {w["name"]: w["status"] for w in _workers(dev, tenant)} == {
            "fast": "ONLINE",
            "default": "ONLINE",
        }
        _age(tenant, "fast", 31)
        assert {w["name"]: w["status"] for w in _workers(dev, tenant)} == {
            "fast": "OFFLINE",
            "default": "ONLINE",
        }
        assert dev.get(f"{tenant.prefix}/work_pools/proc-pool").json()["status"] == "READY"
        _age(tenant, "default", 91)
        assert dev.get(f"{tenant.prefix}/work_pools/proc-pool").json()["status"] == "NOT_READY"
        settings.WORKER_OFFLINE_HEARTBEAT_MULTIPLE = 10
        assert dev.get(f"{tenant.prefix}/work_pools/proc-pool").json()["status"] == "READY"

    def test_a_paused_pool_is_paused_whatever_its_workers(self, tenant, dev, pool):
        _heartbeat(dev, tenant, {"name": "w"})
        dev.patch(f"{tenant.prefix}/work_pools/proc-pool", {"is_paused": True}, format="json")
        assert dev.get(f"{tenant.prefix}/work_pools/proc-pool").json()["status"] == "PAUSED"
        listed = dev.post(f"{tenant.prefix}/work_pools/filter", {}, format="json").json()
        assert [p["status"] for p in listed] == ["PAUSED"]

    def test_filter_by_status_and_heartbeat_time(self, tenant, dev, pool):
        for name in ("a", "b", "c"):
            _heartbeat(dev, tenant, {"name": name, "heartbeat_interval_seconds": 30})
        _age(tenant, "a", 10)
        _age(tenant, "b", 20)
        _age(tenant, "c", 600)
        # What ``deploy()`` asks (captured), newest heartbeat first.
        online = _workers(
            dev, tenant, {"workers": {"status": {"any_": ["ONLINE"]}}, "offset": None, "limit": None}
        )
        assert [w["name"] for w in online] == ["a", "b"]
        offline = _workers(dev, tenant, {"workers": {"status": {"not_any_": ["ONLINE"]}}})
        assert [w["name"] for w in offline] == ["c"]
        since = (timezone.now() - dt.timedelta(seconds=15)).isoformat()
        assert [
            w["name"] for w in _workers(dev, tenant, {"workers": {"last_heartbeat_time": {"after_": since}}})
        ] == ["a"]
        either = {
            "operator": "or_",
            "status": {"any_": ["OFFLINE"]},
            "last_heartbeat_time": {"after_": since},
        }
        assert [w["name"] for w in _workers(dev, tenant, {"workers": either})] == ["a", "c"]
        assert [w["name"] for w in _workers(dev, tenant, {"limit": 1, "offset": 1})] == ["b"]
        for bad in (
            {"workers": {"status": {"any_": ["ASLEEP"]}}},
            {"workers": {"nope": {}}},
            {"limit": 5000},
        ):
            response = dev.post(f"{tenant.prefix}/work_pools/proc-pool/workers/filter", bad, format="json")
            assert response.status_code == 422

    def test_delete_worker(self, tenant, dev, pool):
        _heartbeat(dev, tenant, {"name": "w"})
        p = f"{tenant.prefix}/work_pools/proc-pool/workers"
        assert dev.delete(f"{p}/w").status_code == 204
        assert _workers(dev, tenant) == []
        response = dev.delete(f"{p}/w")
        assert response.status_code == 404 and response.json() == {"detail": "Worker not found."}
