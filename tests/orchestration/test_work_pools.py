"""Work pools and work queues over the wire: CRUD in Prefect's shapes, priorities, statuses,
deletion, bad input, the role matrix and the other workspace. (Heartbeats and workers are in
test_work_workers.py, polling in test_work_polling.py; the helpers here are shared.)"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone
from prefect.client.schemas.objects import WorkPool as PrefectWorkPool
from prefect.client.schemas.objects import WorkQueue as PrefectWorkQueue

from orchestration.models import Deployment, FlowRun, Worker, WorkPool, WorkQueue
from orchestration.schemas.actions import FlowRunCreate
from orchestration.schemas.states import StateCreate, StateDetails
from orchestration.services.flow_runs import flow_run_create
from orchestration.services.flows import flow_upsert
from tenants.scoping import workspace_scope
from tests.conftest import bearer

pytestmark = pytest.mark.django_db

# What ``prefect work-pool create proc-pool --type process`` sends (captured).
PROCESS_TEMPLATE = {
    "job_configuration": {
        "command": "{{ command }}",
        "env": "{{ env }}",
        "labels": "{{ labels }}",
        "name": "{{ name }}",
        "stream_output": "{{ stream_output }}",
        "working_dir": "{{ working_dir }}",
    },
    "variables": {
        "type": "object",
        "properties": {
            "name": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Name"},
            "env": {
                "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "type": "object",
            },
            "labels": {"additionalProperties": {"type": "string"}, "type": "object"},
            "command": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "stream_output": {"default": True, "type": "boolean"},
            "working_dir": {
                "anyOf": [{"format": "path", "type": "string"}, {"type": "null"}],
                "default": None,
            },
        },
    },
}
POOL_KEYS = {"id", "created", "updated", "name", "description", "type", "base_job_template", "is_paused",
             "concurrency_limit", "status", "default_queue_id", "storage_configuration", "active_slots"}  # fmt: skip
QUEUE_KEYS = {"id", "created", "updated", "name", "description", "is_paused", "concurrency_limit", "priority",
              "work_pool_id", "filter", "last_polled", "work_pool_name", "status", "active_slots"}  # fmt: skip


# --- shared helpers -----------------------------------------------------------------------------------


def make_pool(client, tenant, name="proc-pool", **extra):
    body = {
        "name": name,
        "type": "process",
        "base_job_template": PROCESS_TEMPLATE,
        "is_paused": False,
        **extra,
    }
    response = client.post(f"{tenant.prefix}/work_pools/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def make_queue(client, tenant, pool="proc-pool", name="q", **extra):
    response = client.post(
        f"{tenant.prefix}/work_pools/{pool}/queues", {"name": name, **extra}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def make_run(tenant, queue_id, *, state="SCHEDULED", when=None, flow="wf", **fields) -> uuid.UUID:
    """A flow run of ``queue_id`` in ``state`` (SCHEDULED runs are due at ``when``, default now)."""
    names = {"SCHEDULED": "Scheduled", "PENDING": "Pending", "RUNNING": "Running", "CANCELLING": "Cancelling"}
    details = StateDetails(scheduled_time=when or timezone.now()) if state == "SCHEDULED" else StateDetails()
    with workspace_scope(tenant.workspace.id):
        flow_row, _ = flow_upsert(name=flow, tags=[], labels={})
        run, _ = flow_run_create(
            data=FlowRunCreate(
                flow_id=flow_row.id,
                state=StateCreate(type=state, name=names.get(state, state.title()), state_details=details),
            )
        )
        FlowRun.objects.filter(id=run.id).update(work_queue_id=queue_id, **fields)
    return run.id


def make_deployment(tenant, queue_id, name="dep") -> Deployment:
    with workspace_scope(tenant.workspace.id):
        flow_row, _ = flow_upsert(name="wf", tags=[], labels={})
        queue = WorkQueue.objects.get(id=queue_id)
        return Deployment.objects.create(
            flow=flow_row, name=name, work_queue=queue, work_queue_name=queue.name
        )


def rows(model, tenant):
    return model.objects.for_workspace(tenant.workspace.id)


# --- pools --------------------------------------------------------------------------------------------


class TestWorkPoolCreate:
    def test_create_answers_prefects_shape_with_a_default_queue(self, tenant, dev):
        pool = make_pool(dev, tenant)
        assert set(pool) == POOL_KEYS
        assert PrefectWorkPool.model_validate(pool).name == "proc-pool"
        assert pool["status"] == "NOT_READY" and pool["active_slots"] is None
        assert pool["base_job_template"] == PROCESS_TEMPLATE
        assert pool["storage_configuration"] == {
            "bundle_upload_step": None,
            "bundle_execution_step": None,
            "default_result_storage_block_id": None,
        }
        queues = dev.post(f"{tenant.prefix}/work_pools/proc-pool/queues/filter", {}, format="json").json()
        assert [(q["name"], q["priority"], q["id"]) for q in queues] == [
            ("default", 1, pool["default_queue_id"])
        ]
        assert queues[0]["description"] == "The work pool's default queue."
        assert dev.get(f"{tenant.prefix}/work_pools/proc-pool").json() == pool

    def test_duplicate_name_is_409_and_writes_nothing(self, tenant, dev):
        make_pool(dev, tenant)
        response = dev.post(
            f"{tenant.prefix}/work_pools/", {"name": "proc-pool", "type": "process"}, format="json"
        )
        assert response.status_code == 409
        assert response.json()["detail"] == "A work pool with this name already exists."
        assert rows(WorkPool, tenant).count() == 1 and rows(WorkQueue, tenant).count() == 1

    def test_paused_with_limit(self, tenant, dev):
        pool = make_pool(dev, tenant, is_paused=True, concurrency_limit=3)
        assert (pool["status"], pool["concurrency_limit"], pool["active_slots"]) == ("PAUSED", 3, 0)

    def test_minimal_body_defaults_like_prefect(self, tenant, dev):
        response = dev.post(f"{tenant.prefix}/work_pools/", {"name": "bare"}, format="json")
        assert response.status_code == 201
        assert response.json()["type"] == "prefect-agent" and response.json()["base_job_template"] == {}

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"name": ""},
            {"name": "  "},
            {"name": "a/b"},
            {"name": "p", "concurrency_limit": -1},
            {"name": "p", "is_paused": "maybe"},
            {"name": "p", "base_job_template": {"job_configuration": {"x": "{{ nope }}"}, "variables": {}}},
            {"name": "p", "base_job_template": {"job_configuration": {"x": "{{ a }}"}}},
            {"name": "p", "storage_configuration": {"unknown": 1}},
            ["not", "an", "object"],
        ],
    )
    def test_bad_bodies_are_422_and_write_nothing(self, tenant, dev, body):
        assert dev.post(f"{tenant.prefix}/work_pools/", body, format="json").status_code == 422
        assert not rows(WorkPool, tenant).exists()

    def test_prefect_names_are_reserved(self, tenant, dev):
        response = dev.post(f"{tenant.prefix}/work_pools/", {"name": "Prefect-managed"}, format="json")
        assert response.status_code == 403

    def test_work_pool_types_collection_is_not_served(self, tenant, dev):
        # The CLI asks in Cloud mode and carries on after a 404.
        assert dev.get(f"{tenant.prefix}/collections/work_pool_types").status_code == 404


class TestWorkPoolReadUpdateDelete:
    def test_unknown_pool_is_404_with_prefects_detail(self, tenant, dev):
        response = dev.get(f"{tenant.prefix}/work_pools/nope")
        assert response.status_code == 404
        assert response.json() == {"detail": 'Work pool "nope" not found.'}
        for method, path in (("patch", "nope"), ("delete", "nope"), ("post", "nope/queues/filter")):
            assert (
                getattr(dev, method)(f"{tenant.prefix}/work_pools/{path}", {}, format="json").status_code
                == 404
            )

    def test_patch_is_204_and_applies_only_what_is_given(self, tenant, dev):
        make_pool(dev, tenant, description="d")
        p = f"{tenant.prefix}/work_pools/proc-pool"
        assert dev.patch(p, {"is_paused": True, "concurrency_limit": 5}, format="json").status_code == 204
        pool = dev.get(p).json()
        assert (pool["is_paused"], pool["status"], pool["concurrency_limit"], pool["description"]) == (
            True,
            "PAUSED",
            5,
            "d",
        )
        assert pool["base_job_template"] == PROCESS_TEMPLATE
        assert dev.patch(p, {"is_paused": False, "concurrency_limit": None}, format="json").status_code == 204
        pool = dev.get(p).json()
        assert (pool["status"], pool["concurrency_limit"], pool["active_slots"]) == ("NOT_READY", None, None)

    def test_patch_bad_body_is_422_and_changes_nothing(self, tenant, dev):
        make_pool(dev, tenant)
        p = f"{tenant.prefix}/work_pools/proc-pool"
        assert dev.patch(p, {"concurrency_limit": "lots"}, format="json").status_code == 422
        assert dev.patch(p, {"base_job_template": {"variables": {}}}, format="json").status_code == 422
        assert dev.get(p).json()["concurrency_limit"] is None

    def test_active_slots_count_pending_running_and_cancelling_runs(self, tenant, dev):
        pool = make_pool(dev, tenant, concurrency_limit=10)
        queue = make_queue(dev, tenant)
        for state, queue_id in (("RUNNING", pool["default_queue_id"]), ("PENDING", queue["id"]),
                                ("CANCELLING", queue["id"]), ("SCHEDULED", queue["id"])):  # fmt: skip
            make_run(tenant, queue_id, state=state)
        assert dev.get(f"{tenant.prefix}/work_pools/proc-pool").json()["active_slots"] == 3

    def test_delete_removes_queues_and_workers_and_unlinks_deployments(self, tenant, dev):
        pool = make_pool(dev, tenant)
        dev.post(f"{tenant.prefix}/work_pools/proc-pool/workers/heartbeat", {"name": "w"}, format="json")
        deployment = make_deployment(tenant, pool["default_queue_id"])
        assert dev.delete(f"{tenant.prefix}/work_pools/proc-pool").status_code == 204
        assert dev.get(f"{tenant.prefix}/work_pools/proc-pool").status_code == 404
        assert not rows(WorkQueue, tenant).exists() and not rows(Worker, tenant).exists()
        deployment = Deployment.objects.unscoped().get(id=deployment.id)
        assert deployment.work_queue_id is None
        assert dev.delete(f"{tenant.prefix}/work_pools/proc-pool").status_code == 404

    def test_filter_and_count(self, tenant, dev):
        for name, kind in (("a", "process"), ("b", "docker"), ("c", "process")):
            make_pool(dev, tenant, name=name, type=kind)
        p = tenant.prefix
        listed = dev.post(f"{p}/work_pools/filter", {}, format="json").json()
        assert [pool["name"] for pool in listed] == ["a", "b", "c"]
        body = {"work_pools": {"type": {"any_": ["process"]}}}
        assert [pool["name"] for pool in dev.post(f"{p}/work_pools/filter", body, format="json").json()] == [
            "a",
            "c",
        ]
        assert dev.post(f"{p}/work_pools/count", body, format="json").json() == 2
        assert (
            dev.post(f"{p}/work_pools/filter", {"limit": 1, "offset": 1}, format="json").json()[0]["name"]
            == "b"
        )
        assert (
            dev.post(f"{p}/work_pools/filter", {"work_pools": {"nope": 1}}, format="json").status_code == 422
        )


# --- queues -------------------------------------------------------------------------------------------


class TestQueues:
    def test_create_takes_the_next_free_priority(self, tenant, dev):
        make_pool(dev, tenant)
        queue = make_queue(dev, tenant, name="high", concurrency_limit=2)
        assert set(queue) == QUEUE_KEYS
        PrefectWorkQueue.model_validate(queue)
        assert (queue["priority"], queue["work_pool_name"], queue["status"], queue["active_slots"]) == (
            2,
            "proc-pool",
            "NOT_READY",
            0,
        )
        assert queue["description"] == ""

    def test_a_taken_priority_moves_the_others_down(self, tenant, dev):
        make_pool(dev, tenant)
        make_queue(dev, tenant, name="b")  # 2
        make_queue(dev, tenant, name="c")  # 3
        make_queue(dev, tenant, name="a", priority=1)
        order = lambda: [  # noqa: E731
            (q["name"], q["priority"])
            for q in dev.post(f"{tenant.prefix}/work_pools/proc-pool/queues/filter", {}, format="json").json()
        ]
        assert order() == [("a", 1), ("default", 2), ("b", 3), ("c", 4)]
        p = f"{tenant.prefix}/work_pools/proc-pool/queues/c"
        assert dev.patch(p, {"priority": 2}, format="json").status_code == 204
        assert order() == [("a", 1), ("c", 2), ("default", 3), ("b", 4)]
        # A free priority is taken without moving anyone.
        assert dev.patch(p, {"priority": 9}, format="json").status_code == 204
        assert order() == [("a", 1), ("default", 3), ("b", 4), ("c", 9)]
        # A new queue fills the first gap.
        assert make_queue(dev, tenant, name="d")["priority"] == 2

    def test_read_update_delete_by_pool_and_name(self, tenant, dev):
        make_pool(dev, tenant)
        queue = make_queue(dev, tenant, name="q")
        p = f"{tenant.prefix}/work_pools/proc-pool/queues"
        assert dev.get(f"{p}/q").json() == queue
        assert dev.get(f"{p}/nope").json() == {"detail": "Work pool queue 'proc-pool/nope' not found."}
        assert dev.patch(f"{p}/q", {"is_paused": True, "description": "x"}, format="json").status_code == 204
        read = dev.get(f"{p}/q").json()
        assert (read["is_paused"], read["status"], read["description"]) == (True, "PAUSED", "x")
        assert dev.patch(f"{p}/q", {"name": "default"}, format="json").status_code == 409
        assert dev.patch(f"{p}/q", {"name": "renamed"}, format="json").status_code == 204
        assert dev.delete(f"{p}/renamed").status_code == 204
        assert dev.get(f"{p}/renamed").status_code == 404

    def test_duplicate_queue_name_is_409(self, tenant, dev):
        make_pool(dev, tenant)
        response = dev.post(
            f"{tenant.prefix}/work_pools/proc-pool/queues", {"name": "default"}, format="json"
        )
        assert response.status_code == 409
        assert rows(WorkQueue, tenant).count() == 1

    @pytest.mark.parametrize(
        "body", [{}, {"name": "a/b"}, {"name": "q", "priority": 0}, {"name": "q", "concurrency_limit": -2}]
    )
    def test_bad_queue_bodies_are_422(self, tenant, dev, body):
        make_pool(dev, tenant)
        assert (
            dev.post(f"{tenant.prefix}/work_pools/proc-pool/queues", body, format="json").status_code == 422
        )
        assert rows(WorkQueue, tenant).count() == 1

    def test_the_default_queue_cannot_be_deleted(self, tenant, dev):
        make_pool(dev, tenant)
        assert dev.delete(f"{tenant.prefix}/work_pools/proc-pool/queues/default").status_code == 400
        assert rows(WorkQueue, tenant).count() == 1

    def test_deleting_a_queue_in_use_unlinks_its_deployments(self, tenant, dev):
        make_pool(dev, tenant)
        queue = make_queue(dev, tenant)
        deployment = make_deployment(tenant, queue["id"])
        assert dev.delete(f"{tenant.prefix}/work_queues/{queue['id']}").status_code == 204
        assert Deployment.objects.unscoped().get(id=deployment.id).work_queue_id is None

    def test_status_ready_after_a_recent_poll_and_not_ready_after_a_minute(self, tenant, dev):
        make_pool(dev, tenant)
        p = f"{tenant.prefix}/work_pools/proc-pool"
        dev.post(f"{p}/get_scheduled_flow_runs", {}, format="json")
        assert dev.get(f"{p}/queues/default").json()["status"] == "READY"
        rows(WorkQueue, tenant).update(last_polled=timezone.now() - dt.timedelta(seconds=61))
        assert dev.get(f"{p}/queues/default").json()["status"] == "NOT_READY"

    def test_work_queue_routes_by_id_and_name(self, tenant, dev):
        make_pool(dev, tenant)
        make_pool(dev, tenant, name="other")
        queue = make_queue(dev, tenant, name="only-here")
        p = f"{tenant.prefix}/work_queues"
        assert dev.get(f"{p}/{queue['id']}").json() == queue
        assert dev.get(f"{p}/{uuid.uuid4()}").json() == {"detail": "work queue not found"}
        assert dev.get(f"{p}/not-a-uuid").status_code == 404
        assert dev.get(f"{p}/name/only-here").json()["id"] == queue["id"]
        assert dev.get(f"{p}/name/nope").status_code == 404
        assert dev.patch(f"{p}/{queue['id']}", {"concurrency_limit": 4}, format="json").status_code == 204
        assert dev.get(f"{p}/{queue['id']}").json()["concurrency_limit"] == 4
        listed = dev.post(f"{p}/filter", {}, format="json").json()
        assert sorted((q["work_pool_name"], q["name"]) for q in listed) == [
            ("other", "default"),
            ("proc-pool", "default"),
            ("proc-pool", "only-here"),
        ]
        body = {"work_queues": {"name": {"startswith_": ["only"]}}}
        assert [q["id"] for q in dev.post(f"{p}/filter", body, format="json").json()] == [queue["id"]]
        body = {"work_pools": {"name": {"any_": ["other"]}}}
        assert [q["work_pool_name"] for q in dev.post(f"{p}/filter", body, format="json").json()] == ["other"]


# --- roles and tenants --------------------------------------------------------------------------------


def _calls(tenant, queue_id):
    p = f"{tenant.prefix}/work_pools"
    return {
        "read pool": ("get", f"{p}/proc-pool", None),
        "filter pools": ("post", f"{p}/filter", {}),
        "read queues": ("post", f"{p}/proc-pool/queues/filter", {}),
        "read queue by id": ("get", f"{tenant.prefix}/work_queues/{queue_id}", None),
        "read workers": ("post", f"{p}/proc-pool/workers/filter", {}),
        "heartbeat": (
            "post",
            f"{p}/proc-pool/workers/heartbeat",
            {"name": "w", "heartbeat_interval_seconds": 30},
        ),
        "poll": ("post", f"{p}/proc-pool/get_scheduled_flow_runs", {"work_queue_names": []}),
        "create pool": ("post", f"{p}/", {"name": "another", "type": "process"}),
        "update pool": ("patch", f"{p}/proc-pool", {"description": "x"}),
        "create queue": ("post", f"{p}/proc-pool/queues", {"name": "nq"}),
        "update queue": ("patch", f"{p}/proc-pool/queues/default", {"description": "x"}),
        "delete worker": ("delete", f"{p}/proc-pool/workers/w", None),
        "delete queue": ("delete", f"{p}/proc-pool/queues/extra", None),
        "delete pool": ("delete", f"{p}/proc-pool", None),
    }


READS = {"read pool", "filter pools", "read queues", "read queue by id", "read workers", "poll"}
# Developers and Owners may do everything.
ALLOWED = {"viewer": READS, "runner": READS, "worker": READS | {"heartbeat"}}


@pytest.mark.parametrize("role", ["viewer", "runner", "worker", "developer", "owner"])
def test_role_matrix(tenant, dev, role_client, role):
    make_pool(dev, tenant)
    extra = make_queue(dev, tenant, name="extra")
    dev.post(f"{tenant.prefix}/work_pools/proc-pool/workers/heartbeat", {"name": "w"}, format="json")
    client = role_client(role)
    calls = _calls(tenant, extra["id"])
    allowed = set(calls) if role in ("developer", "owner") else ALLOWED[role]
    for action, (method, path, body) in calls.items():
        response = getattr(client, method)(path, body, format="json")
        expected_ok = action in allowed
        assert (response.status_code < 300) is expected_ok, (role, action, response.status_code)
        if not expected_ok:
            assert response.status_code == 403, (role, action, response.status_code)


def test_the_other_workspaces_pools_are_not_found(two_workspaces, api_client):
    a, b = two_workspaces
    b_client = bearer(api_client.__class__(), b.service_key)
    b_pool = make_pool(b_client, b)
    a_client = bearer(api_client, a.service_key)
    p = f"{a.prefix}/work_pools/proc-pool"
    assert a_client.get(p).status_code == 404
    assert a_client.post(f"{p}/workers/heartbeat", {"name": "w"}, format="json").status_code == 404
    assert a_client.post(f"{p}/get_scheduled_flow_runs", {}, format="json").status_code == 404
    assert a_client.get(f"{a.prefix}/work_queues/{b_pool['default_queue_id']}").status_code == 404
    assert a_client.patch(f"{a.prefix}/work_queues/{b_pool['default_queue_id']}", {"is_paused": True},
                          format="json").status_code == 404  # fmt: skip
    assert a_client.post(f"{a.prefix}/work_queues/filter", {}, format="json").json() == []
    assert a_client.post(f"{a.prefix}/work_pools/count", {}, format="json").json() == 0
    assert not Worker.objects.unscoped().exists()
    assert not WorkQueue.objects.unscoped().get(id=b_pool["default_queue_id"]).is_paused
    # The same name is free in A.
    assert make_pool(a_client, a)["id"] != b_pool["id"]


@pytest.mark.django_db
def test_a_pools_runs_are_those_of_its_queues(tenant, dev):
    """The UI's work pool page: ``flow_runs/filter`` by pool name finds the runs of the pool's
    queues, and no run of another pool or of none; as in Prefect's server, a run is in a pool
    through its queue (a run naming the pool without a queue, which no door makes, is not)."""
    make_pool(dev, tenant)
    make_pool(dev, tenant, name="other")
    mine = make_queue(dev, tenant, name="mine")
    theirs = make_queue(dev, tenant, pool="other", name="theirs")
    pool_id = WorkPool.objects.for_workspace(tenant.workspace.id).get(name="proc-pool").id
    make_run(tenant, None, flow="a", work_pool_id=pool_id)
    by_queue = make_run(tenant, uuid.UUID(mine["id"]), flow="b")
    make_run(tenant, uuid.UUID(theirs["id"]), flow="c")
    make_run(tenant, None, flow="d")
    body = {"work_pools": {"name": {"any_": ["proc-pool"]}}, "sort": "START_TIME_DESC"}
    found = dev.post(f"{tenant.prefix}/flow_runs/filter", body, format="json").json()
    assert {run["id"] for run in found} == {str(by_queue)}
    assert dev.post(f"{tenant.prefix}/flow_runs/count", body, format="json").json() == 1
    body = {"work_pools": {"name": {"any_": ["nope"]}}}
    assert dev.post(f"{tenant.prefix}/flow_runs/filter", body, format="json").json() == []
