"""Concurrency limits over the wire: global limits (v2) and their slots and leases, tag limits
(v1), the shapes and status codes the 3.9 client expects, roles, and other workspaces."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connection
from django.utils import timezone

from accounts.permissions import WORKSPACE_ROLE_SCOPES, WorkspaceRole
from orchestration.models import ConcurrencyLease, ConcurrencyLimitV2
from tenants.scoping import workspace_scope
from tests.conftest import bearer

pytestmark = pytest.mark.django_db

V2 = "v2/concurrency_limits"
LIMIT_KEYS = {
    "id", "created", "updated", "active", "name", "limit", "active_slots", "denied_slots",
    "slot_decay_per_second", "avg_slot_occupancy_seconds",
}  # fmt: skip


def _create(client, tenant, name="db", limit=2, **extra):
    return client.post(f"{tenant.prefix}/{V2}/", {"name": name, "limit": limit, **extra}, format="json")


def _limit(tenant, name) -> ConcurrencyLimitV2:
    return ConcurrencyLimitV2.objects.for_workspace(tenant.workspace.id).get(name=name)


class TestGlobalLimitCrud:
    def test_create_read_update_delete(self, tenant, dev):
        p = tenant.prefix
        response = _create(dev, tenant)
        assert response.status_code == 201
        limit = response.json()
        assert set(limit) == LIMIT_KEYS
        assert (limit["name"], limit["limit"], limit["active"], limit["active_slots"]) == ("db", 2, True, 0)
        assert _create(dev, tenant).status_code == 409
        assert dev.get(f"{p}/{V2}/{limit['id']}").json()["name"] == "db"
        assert dev.get(f"{p}/{V2}/db").json()["id"] == limit["id"]
        assert dev.patch(f"{p}/{V2}/db", {"limit": 5, "active": False}, format="json").status_code == 204
        assert dev.get(f"{p}/{V2}/{limit['id']}").json()["limit"] == 5
        assert dev.patch(f"{p}/{V2}/{limit['id']}", {"name": "db2"}, format="json").status_code == 204
        assert dev.get(f"{p}/{V2}/db").status_code == 404
        assert dev.delete(f"{p}/{V2}/db2").status_code == 204
        assert dev.get(f"{p}/{V2}/{limit['id']}").json() == {"detail": "Concurrency Limit not found"}
        assert dev.delete(f"{p}/{V2}/db2").status_code == 404
        assert dev.patch(f"{p}/{V2}/db2", {"limit": 1}, format="json").status_code == 404

    def test_rename_onto_an_existing_name_is_409(self, tenant, dev):
        _create(dev, tenant, "a")
        _create(dev, tenant, "b")
        assert dev.patch(f"{tenant.prefix}/{V2}/b", {"name": "a"}, format="json").status_code == 409
        assert dev.get(f"{tenant.prefix}/{V2}/b").status_code == 200

    def test_filter_is_ordered_by_name_and_paged(self, tenant, dev):
        for name in ("c", "a", "b"):
            _create(dev, tenant, name)
        names = lambda body: [
            x["name"] for x in dev.post(f"{tenant.prefix}/{V2}/filter", body, format="json").json()
        ]  # noqa: E731
        assert names({}) == ["a", "b", "c"]
        assert names({"limit": 1, "offset": 1}) == ["b"]
        assert dev.post(f"{tenant.prefix}/{V2}/filter", {"limit": -1}, format="json").status_code == 422

    @pytest.mark.parametrize(
        "body",
        [{"name": "a/b", "limit": 1}, {"name": "", "limit": 1}, {"name": "x", "limit": -1}, {"limit": 1},
         {"name": "x", "limit": 1, "slot_decay_per_second": -1}],
    )  # fmt: skip
    def test_bad_bodies_are_422(self, tenant, dev, body):
        assert dev.post(f"{tenant.prefix}/{V2}/", body, format="json").status_code == 422
        assert not ConcurrencyLimitV2.objects.for_workspace(tenant.workspace.id).exists()


class TestSlots:
    def test_increment_until_full_then_423_with_retry_after(self, tenant, dev):
        _create(dev, tenant, "db", 2)
        url = f"{tenant.prefix}/{V2}/increment"
        first = dev.post(url, {"names": ["db", "missing"], "slots": 2}, format="json")
        assert first.status_code == 200
        assert [(x["name"], x["limit"]) for x in first.json()] == [("db", 2)]
        locked = dev.post(url, {"names": ["db"], "slots": 1}, format="json")
        assert locked.status_code == 423
        assert float(locked["Retry-After"]) > 0
        limit = _limit(tenant, "db")
        assert (limit.active_slots, limit.denied_slots) == (2, 1)
        decrement = dev.post(
            f"{tenant.prefix}/{V2}/decrement",
            {"names": ["db"], "slots": 1, "occupancy_seconds": 4},
            format="json",
        )
        assert decrement.status_code == 200 and decrement.json()[0]["name"] == "db"
        assert _limit(tenant, "db").active_slots == 1
        # Never negative.
        dev.post(f"{tenant.prefix}/{V2}/decrement", {"names": ["db"], "slots": 5}, format="json")
        assert _limit(tenant, "db").active_slots == 0

    def test_all_or_nothing_across_limits(self, tenant, dev):
        _create(dev, tenant, "a", 5)
        _create(dev, tenant, "b", 1, active_slots=1)
        response = dev.post(
            f"{tenant.prefix}/{V2}/increment", {"names": ["a", "b"], "slots": 1}, format="json"
        )
        assert response.status_code == 423
        assert _limit(tenant, "a").active_slots == 0

    def test_more_slots_than_the_limit_is_422(self, tenant, dev):
        _create(dev, tenant, "db", 2)
        response = dev.post(f"{tenant.prefix}/{V2}/increment", {"names": ["db"], "slots": 3}, format="json")
        assert response.status_code == 422

    def test_inactive_limits_are_answered_but_not_counted(self, tenant, dev):
        _create(dev, tenant, "db", 1, active=False)
        for _ in range(3):
            response = dev.post(
                f"{tenant.prefix}/{V2}/increment", {"names": ["db"], "slots": 1}, format="json"
            )
            assert response.status_code == 200 and response.json()[0]["name"] == "db"
        assert _limit(tenant, "db").active_slots == 0

    def test_rate_limit_needs_decay_and_slots_decay(self, tenant, dev):
        url = f"{tenant.prefix}/{V2}/increment"
        _create(dev, tenant, "plain", 2)
        response = dev.post(url, {"names": ["plain"], "slots": 1, "mode": "rate_limit"}, format="json")
        assert response.status_code == 422 and "plain" in response.json()["detail"]
        _create(dev, tenant, "api", 2, slot_decay_per_second=1.0)
        for _ in range(2):
            assert (
                dev.post(url, {"names": ["api"], "slots": 1, "mode": "rate_limit"}, format="json").status_code
                == 200
            )
        assert (
            dev.post(url, {"names": ["api"], "slots": 1, "mode": "rate_limit"}, format="json").status_code
            == 423
        )
        # Two seconds later both slots have decayed.
        ConcurrencyLimitV2.objects.unscoped().filter(name="api").update(
            updated=timezone.now() - dt.timedelta(seconds=2.5)
        )
        assert dev.get(f"{tenant.prefix}/{V2}/api").json()["active_slots"] == 0
        assert (
            dev.post(url, {"names": ["api"], "slots": 1, "mode": "rate_limit"}, format="json").status_code
            == 200
        )

    @pytest.mark.parametrize(
        "body",
        [{"names": [], "slots": 1}, {"names": ["a"], "slots": 0}, {"names": ["a"], "slots": 1, "mode": "x"}],
    )
    def test_bad_increments_are_422(self, tenant, dev, body):
        assert dev.post(f"{tenant.prefix}/{V2}/increment", body, format="json").status_code == 422


class TestLeases:
    def test_increment_with_lease_renew_and_release(self, tenant, dev):
        _create(dev, tenant, "db", 1)
        holder = {"type": "task_run", "id": str(uuid.uuid4())}
        response = dev.post(
            f"{tenant.prefix}/{V2}/increment-with-lease",
            {"names": ["db"], "slots": 1, "mode": "concurrency", "lease_duration": 60, "holder": holder},
            format="json",
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"lease_id", "limits"} and body["limits"][0]["name"] == "db"
        with workspace_scope(tenant.workspace.id):
            lease = ConcurrencyLease.objects.get(id=body["lease_id"])
            assert lease.slots == 1 and lease.metadata == {"holder": holder}
            assert 55 < (lease.expiration - timezone.now()).total_seconds() <= 60
        assert _limit(tenant, "db").active_slots == 1

        renew = dev.post(
            f"{tenant.prefix}/{V2}/leases/{body['lease_id']}/renew", {"lease_duration": 600}, format="json"
        )
        assert renew.status_code == 204
        with workspace_scope(tenant.workspace.id):
            assert (
                ConcurrencyLease.objects.get(id=body["lease_id"]).expiration - timezone.now()
            ).total_seconds() > 590

        release = dev.post(
            f"{tenant.prefix}/{V2}/decrement-with-lease", {"lease_id": body["lease_id"]}, format="json"
        )
        assert release.status_code == 204
        assert _limit(tenant, "db").active_slots == 0
        # Releasing twice gives nothing back twice; a gone lease cannot be renewed.
        dev.post(f"{tenant.prefix}/{V2}/decrement-with-lease", {"lease_id": body["lease_id"]}, format="json")
        assert _limit(tenant, "db").active_slots == 0
        gone = dev.post(f"{tenant.prefix}/{V2}/leases/{body['lease_id']}/renew", {}, format="json")
        assert gone.status_code == 410

    def test_no_limits_means_no_stored_lease(self, tenant, dev):
        response = dev.post(
            f"{tenant.prefix}/{V2}/increment-with-lease", {"names": ["tag:none"], "slots": 1}, format="json"
        )
        assert response.status_code == 200 and response.json()["limits"] == []
        uuid.UUID(response.json()["lease_id"])
        assert not ConcurrencyLease.objects.unscoped().exists()

    @pytest.mark.parametrize("duration", [10, 60 * 60 * 24 + 1])
    def test_lease_duration_bounds(self, tenant, dev, duration):
        _create(dev, tenant, "db", 1)
        response = dev.post(
            f"{tenant.prefix}/{V2}/increment-with-lease",
            {"names": ["db"], "slots": 1, "lease_duration": duration},
            format="json",
        )
        assert response.status_code == 422


class TestTagLimits:
    def test_upsert_read_filter_delete(self, tenant, dev):
        p = tenant.prefix
        first = dev.post(f"{p}/concurrency_limits/", {"tag": "db", "concurrency_limit": 2}, format="json")
        assert first.status_code == 201
        body = first.json()
        assert set(body) == {"id", "created", "updated", "tag", "concurrency_limit", "active_slots"}
        assert (body["tag"], body["concurrency_limit"], body["active_slots"]) == ("db", 2, [])
        again = dev.post(f"{p}/concurrency_limits/", {"tag": "db", "concurrency_limit": 3}, format="json")
        assert again.status_code == 200 and again.json()["id"] == body["id"]
        assert _limit(tenant, "tag:db").limit == 3
        assert dev.get(f"{p}/concurrency_limits/{body['id']}").json()["tag"] == "db"
        assert dev.get(f"{p}/concurrency_limits/tag/db").json()["concurrency_limit"] == 3
        # Global limits that are not tag limits do not show up as tag limits.
        _create(dev, tenant, "other", 1)
        assert [x["tag"] for x in dev.post(f"{p}/concurrency_limits/filter", {}, format="json").json()] == [
            "db"
        ]
        other_id = _limit(tenant, "other").id
        assert dev.get(f"{p}/concurrency_limits/{other_id}").status_code == 404
        deleted = dev.delete(f"{p}/concurrency_limits/tag/db")
        assert deleted.status_code == 200
        assert dev.get(f"{p}/concurrency_limits/tag/db").status_code == 404
        assert dev.delete(f"{p}/concurrency_limits/tag/db").status_code == 404

    def test_task_run_slots_through_v2_tag_names(self, tenant, dev):
        """What the 3.9 task engine does: ``tag:<tag>`` names, a task_run holder, a lease."""
        p = tenant.prefix
        dev.post(f"{p}/concurrency_limits/", {"tag": "db", "concurrency_limit": 1}, format="json")
        run_id = str(uuid.uuid4())
        taken = dev.post(
            f"{p}/{V2}/increment-with-lease",
            {
                "names": ["tag:db"],
                "slots": 1,
                "lease_duration": 60,
                "holder": {"type": "task_run", "id": run_id},
            },
            format="json",
        )
        assert taken.status_code == 200
        assert dev.get(f"{p}/concurrency_limits/tag/db").json()["active_slots"] == [run_id]
        blocked = dev.post(f"{p}/{V2}/increment-with-lease", {"names": ["tag:db"], "slots": 1}, format="json")
        assert blocked.status_code == 423 and float(blocked["Retry-After"]) <= 10 * 1.25
        dev.post(f"{p}/{V2}/decrement-with-lease", {"lease_id": taken.json()["lease_id"]}, format="json")
        assert dev.get(f"{p}/concurrency_limits/tag/db").json()["active_slots"] == []

    def test_v1_increment_decrement(self, tenant, dev):
        p = tenant.prefix
        dev.post(f"{p}/concurrency_limits/", {"tag": "db", "concurrency_limit": 1}, format="json")
        run_a, run_b = str(uuid.uuid4()), str(uuid.uuid4())
        taken = dev.post(
            f"{p}/concurrency_limits/increment",
            {"names": ["db", "free"], "task_run_id": run_a},
            format="json",
        )
        assert taken.status_code == 200 and [x["name"] for x in taken.json()] == ["db"]
        blocked = dev.post(
            f"{p}/concurrency_limits/increment", {"names": ["db"], "task_run_id": run_b}, format="json"
        )
        assert blocked.status_code == 423 and blocked["Retry-After"] == "10.0"
        assert blocked.json()["detail"] == "Concurrency limit for the db tag has been reached"
        released = dev.post(
            f"{p}/concurrency_limits/decrement",
            {"names": ["db"], "task_run_id": run_a, "occupancy_seconds": 1.0},
            format="json",
        )
        assert released.status_code == 200
        assert _limit(tenant, "tag:db").active_slots == 0
        assert (
            dev.post(
                f"{p}/concurrency_limits/increment", {"names": ["db"], "task_run_id": run_b}, format="json"
            ).status_code
            == 200
        )

    def test_a_zero_limit_would_deadlock(self, tenant, dev):
        p = tenant.prefix
        dev.post(f"{p}/concurrency_limits/", {"tag": "db", "concurrency_limit": 0}, format="json")
        response = dev.post(
            f"{p}/concurrency_limits/increment",
            {"names": ["db"], "task_run_id": str(uuid.uuid4())},
            format="json",
        )
        assert response.status_code == 423 and "is 0 and will deadlock" in response.json()["detail"]

    def test_reset_with_and_without_override(self, tenant, dev):
        p = tenant.prefix
        dev.post(f"{p}/concurrency_limits/", {"tag": "db", "concurrency_limit": 3}, format="json")
        dev.post(
            f"{p}/concurrency_limits/increment",
            {"names": ["db"], "task_run_id": str(uuid.uuid4())},
            format="json",
        )
        keep = str(uuid.uuid4())
        reset = dev.post(f"{p}/concurrency_limits/tag/db/reset", {"slot_override": [keep]}, format="json")
        assert reset.status_code == 200
        assert dev.get(f"{p}/concurrency_limits/tag/db").json()["active_slots"] == [keep]
        assert _limit(tenant, "tag:db").active_slots == 1
        dev.post(f"{p}/concurrency_limits/tag/db/reset", {}, format="json")
        assert _limit(tenant, "tag:db").active_slots == 0
        assert dev.get(f"{p}/concurrency_limits/tag/db").json()["active_slots"] == []
        assert dev.post(f"{p}/concurrency_limits/tag/nope/reset", {}, format="json").status_code == 404

    def test_delete_by_id(self, tenant, dev):
        p = tenant.prefix
        limit_id = dev.post(
            f"{p}/concurrency_limits/", {"tag": "db", "concurrency_limit": 3}, format="json"
        ).json()["id"]
        assert dev.delete(f"{p}/concurrency_limits/{limit_id}").status_code == 200
        assert dev.delete(f"{p}/concurrency_limits/{limit_id}").status_code == 404


# --- who may do what ----------------------------------------------------------------------------------

ROUTES = [
    # (method, path template, body, the scope the route needs)
    ("GET", f"{V2}/db", None, "see_concurrency_limits"),
    ("POST", f"{V2}/filter", {}, "see_concurrency_limits"),
    ("POST", f"{V2}/", {"name": "new", "limit": 1}, "manage_concurrency_limits"),
    ("PATCH", f"{V2}/db", {"limit": 9}, "manage_concurrency_limits"),
    ("DELETE", f"{V2}/db", None, "manage_concurrency_limits"),
    ("POST", f"{V2}/increment", {"names": ["db"], "slots": 1}, "run_flows"),
    ("POST", f"{V2}/increment-with-lease", {"names": ["db"], "slots": 1}, "run_flows"),
    ("POST", f"{V2}/decrement", {"names": ["db"], "slots": 1}, "run_flows"),
    ("POST", f"{V2}/decrement-with-lease", {"lease_id": str(uuid.uuid4())}, "run_flows"),
    ("POST", f"{V2}/leases/LEASE/renew", {}, "run_flows"),
    ("GET", "concurrency_limits/tag/t", None, "see_concurrency_limits"),
    ("POST", "concurrency_limits/filter", {}, "see_concurrency_limits"),
    ("POST", "concurrency_limits/", {"tag": "t", "concurrency_limit": 2}, "manage_concurrency_limits"),
    ("POST", "concurrency_limits/tag/t/reset", {}, "manage_concurrency_limits"),
    ("DELETE", "concurrency_limits/tag/t", None, "manage_concurrency_limits"),
    ("POST", "concurrency_limits/increment", {"names": ["t"], "task_run_id": str(uuid.uuid4())}, "run_flows"),
    ("POST", "concurrency_limits/decrement", {"names": ["t"], "task_run_id": str(uuid.uuid4())}, "run_flows"),
]
ROLES = [
    WorkspaceRole.VIEWER,
    WorkspaceRole.RUNNER,
    WorkspaceRole.DEVELOPER,
    WorkspaceRole.WORKER,
    WorkspaceRole.OWNER,
]


@pytest.fixture
def seeded(tenant, dev):
    """A global limit ``db``, a tag limit ``t`` and a live lease on ``db``; the lease's id."""
    _create(dev, tenant, "db", 100)
    dev.post(f"{tenant.prefix}/concurrency_limits/", {"tag": "t", "concurrency_limit": 100}, format="json")
    return dev.post(
        f"{tenant.prefix}/{V2}/increment-with-lease", {"names": ["db"], "slots": 1}, format="json"
    ).json()["lease_id"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "template", "body", "scope"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES]
)
def test_role_matrix(tenant, role_client, seeded, role, method, template, body, scope):
    client = role_client(role)
    url = f"{tenant.prefix}/{template.replace('LEASE', seeded)}"
    response = (
        getattr(client, method.lower())(url, body, format="json")
        if body is not None
        else getattr(client, method.lower())(url)
    )
    allowed = scope in WORKSPACE_ROLE_SCOPES[role]
    if allowed:
        assert response.status_code < 400, (role, method, url, response.status_code, response.content)
    else:
        assert response.status_code == 403, (role, method, url, response.status_code)


def test_developers_and_workers_run_flows_viewers_and_runners_do_not():
    """The premise of the matrix: whoever executes flows can take and release slots."""
    assert "run_flows" in WORKSPACE_ROLE_SCOPES[WorkspaceRole.DEVELOPER]
    assert "run_flows" in WORKSPACE_ROLE_SCOPES[WorkspaceRole.WORKER]
    assert "manage_concurrency_limits" not in WORKSPACE_ROLE_SCOPES[WorkspaceRole.WORKER]
    assert "run_flows" not in WORKSPACE_ROLE_SCOPES[WorkspaceRole.VIEWER]


class TestOtherWorkspaces:
    def test_limits_leases_and_tags_of_b_are_not_found_from_a(self, two_workspaces, api_client):
        a, b = two_workspaces
        b_client = bearer(api_client, b.service_key)
        limit = _create(b_client, b, "db", 1).json()
        lease_id = b_client.post(
            f"{b.prefix}/{V2}/increment-with-lease", {"names": ["db"], "slots": 1}, format="json"
        ).json()["lease_id"]
        b_client.post(f"{b.prefix}/concurrency_limits/", {"tag": "t", "concurrency_limit": 1}, format="json")

        a_client = bearer(api_client, a.service_key)
        assert a_client.get(f"{a.prefix}/{V2}/{limit['id']}").status_code == 404
        assert a_client.get(f"{a.prefix}/{V2}/db").status_code == 404
        assert a_client.patch(f"{a.prefix}/{V2}/db", {"limit": 50}, format="json").status_code == 404
        assert a_client.delete(f"{a.prefix}/{V2}/{limit['id']}").status_code == 404
        assert a_client.post(f"{a.prefix}/{V2}/filter", {}, format="json").json() == []
        assert a_client.post(f"{a.prefix}/{V2}/leases/{lease_id}/renew", {}, format="json").status_code == 410
        a_client.post(f"{a.prefix}/{V2}/decrement-with-lease", {"lease_id": lease_id}, format="json")
        a_client.post(f"{a.prefix}/{V2}/decrement", {"names": ["db"], "slots": 1}, format="json")
        assert a_client.get(f"{a.prefix}/concurrency_limits/tag/t").status_code == 404
        # A's increments of the same name do not touch B's limit.
        assert (
            a_client.post(f"{a.prefix}/{V2}/increment", {"names": ["db"], "slots": 1}, format="json").json()
            == []
        )
        assert _limit(b, "db").active_slots == 1
        assert _limit(b, "db").limit == 1
        assert ConcurrencyLease.objects.for_workspace(b.workspace.id).filter(id=lease_id).exists()


# --- the real client ----------------------------------------------------------------------------------


@pytest.fixture
def prefect_client(tenant):
    """The 3.9 ``SyncPrefectClient`` talking to this app in process (WSGI transport)."""
    from prefect.client.orchestration import SyncPrefectClient

    # Keep the test's connection open across requests, as Django's test client does.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    transport = httpx.WSGITransport(app=get_wsgi_application())
    client = SyncPrefectClient(
        api=f"http://testserver{tenant.prefix}",
        api_key=tenant.service_key,
        httpx_settings={"transport": transport},
    )
    try:
        with client:
            yield client
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_prefect_client_manages_limits_and_slots(prefect_client, tenant):
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    client = prefect_client
    limit_id = client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="db", limit=2))
    with pytest.raises(ObjectAlreadyExists):
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="db", limit=2))
    assert client.read_global_concurrency_limit_by_name("db").id == limit_id
    client.update_global_concurrency_limit("db", GlobalConcurrencyLimitUpdate(limit=3))
    assert [x.limit for x in client.read_global_concurrency_limits()] == [3]

    holder = ConcurrencyLeaseHolder(type="flow_run", id=uuid.uuid4())
    response = client.increment_concurrency_slots_with_lease(
        names=["db"], slots=2, mode="concurrency", lease_duration=60, holder=holder
    )
    acquired = ConcurrencyLimitWithLeaseResponse.model_validate(response.json())
    assert [x.name for x in acquired.limits] == ["db"]
    assert client.read_global_concurrency_limit_by_name("db").active_slots == 2
    client.renew_concurrency_lease(lease_id=acquired.lease_id, lease_duration=120)
    client.release_concurrency_slots_with_lease(lease_id=acquired.lease_id)
    assert client.read_global_concurrency_limit_by_name("db").active_slots == 0

    client.increment_concurrency_slots(names=["db"], slots=1, mode="concurrency")
    client.release_concurrency_slots(names=["db"], slots=1, occupancy_seconds=0.5)
    assert client.read_global_concurrency_limit_by_name("db").active_slots == 0

    tag_id = client.create_concurrency_limit(tag="io", concurrency_limit=4)
    assert client.read_concurrency_limit_by_tag("io").id == tag_id
    assert [x.tag for x in client.read_concurrency_limits(limit=10, offset=0)] == ["io"]
    client.reset_concurrency_limit_by_tag("io", slot_override=[uuid.uuid4()])
    assert len(client.read_concurrency_limit_by_tag("io").active_slots) == 1
    client.delete_concurrency_limit_by_tag("io")
    with pytest.raises(ObjectNotFound):
        client.read_concurrency_limit_by_tag("io")
    client.delete_global_concurrency_limit_by_name("db")
    with pytest.raises(ObjectNotFound):
        client.read_global_concurrency_limit_by_name("db")


@pytest.mark.django_db(transaction=True)
def test_the_prefect_concurrency_context_manager(tenant, monkeypatch):
    """``prefect.concurrency.sync.concurrency`` takes a slot with a lease, renews it and gives it
    back, through the client's own acquisition service and renewal thread."""
    from prefect.concurrency.sync import concurrency
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

    with workspace_scope(tenant.workspace.id):
        ConcurrencyLimitV2.objects.create(name="gpu", limit=1)
    transport = _ClosingWSGI(httpx.WSGITransport(app=get_wsgi_application()))
    sync_init, async_init = httpx.Client.__init__, httpx.AsyncClient.__init__

    def init_sync(self, *args, **kwargs):
        sync_init(self, *args, **{**kwargs, "transport": transport})

    def init_async(self, *args, **kwargs):
        async_init(self, *args, **{**kwargs, "transport": _AsyncWSGI(transport)})

    # The client's own acquisition events go to a websocket this in-process setup does not serve.
    import prefect.concurrency._sync as client_sync

    monkeypatch.setattr(client_sync, "emit_concurrency_acquisition_events", lambda *a, **k: {})
    monkeypatch.setattr(client_sync, "emit_concurrency_release_events", lambda *a, **k: None)
    monkeypatch.setattr(httpx.Client, "__init__", init_sync)
    monkeypatch.setattr(httpx.AsyncClient, "__init__", init_async)
    settings = {PREFECT_API_URL: f"http://testserver{tenant.prefix}", PREFECT_API_KEY: tenant.service_key}
    with temporary_settings(settings), concurrency("gpu", occupy=1, strict=True):
        assert _limit(tenant, "gpu").active_slots == 1
        assert ConcurrencyLease.objects.for_workspace(tenant.workspace.id).count() == 1
    assert _limit(tenant, "gpu").active_slots == 0
    assert not ConcurrencyLease.objects.for_workspace(tenant.workspace.id).exists()


class _ClosingWSGI(httpx.BaseTransport):
    """The WSGI transport, closing the calling thread's database connection after each request
    (the client calls from threads of its own; PostgreSQL settings keep connections alive)."""

    def __init__(self, transport: httpx.WSGITransport):
        self.transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self.transport.handle_request(request)
            content = response.read()
        finally:
            connection.close()
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )


class _AsyncWSGI(httpx.AsyncBaseTransport):
    """An async transport over the sync one (the client's acquisition service is async)."""

    def __init__(self, transport: _ClosingWSGI):
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        sync_request = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        # Django's ORM refuses to run on a thread with an event loop: answer from a worker thread.
        response = await asyncio.to_thread(self.transport.handle_request, sync_request)
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content, request=request
        )
