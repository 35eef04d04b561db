"""A write either answers its success or leaves nothing.

A database connection can die at any moment (a restart, a failover, a terminated backend). Before
the write is durable, that is a retryable 503 and nothing was written; so once it is durable (the
outermost transaction committed, or a statement ran in autocommit), the request must not need the
database again: the answer is built from what the request already holds. Otherwise the client is
told 503 for a write that happened, and retries it (Prefect's client does): a second flow run.

Each test lets the request run until its write is durable, then breaks the connection as a
terminated backend would (every later statement raises ``OperationalError``), and expects the
write's success.
"""

from __future__ import annotations

import contextlib

import pytest
from django.db import OperationalError, connection, connections

from orchestration.models import Flow, FlowRun
from tests.conftest import bearer

WRITES = ("insert", "update", "delete")
# Stamps the gate writes on the way in (a key's last use): not the request's write; losing the
# connection after one is a 503 with nothing of the request written.
BOOKKEEPING = ('"last_used_at"', '"last_seen_at"')


class _DurableThenGone:
    """After the first durable write, every statement fails as on a terminated backend."""

    def __init__(self):
        self.durable = False
        self.refused: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        if self.durable:
            self.refused.append(sql)
            raise OperationalError("server closed the connection unexpectedly")
        result = execute(sql, params, many, context)
        if (
            not connection.in_atomic_block
            and sql.lstrip().lower().startswith(WRITES)
            and not any(stamp in sql for stamp in BOOKKEEPING)
        ):
            self.durable = True  # autocommit: this statement is durable now
        return result


@contextlib.contextmanager
def _connection_dies_once_durable(monkeypatch):
    breaker = _DurableThenGone()
    wrapper = type(connections["default"])
    original = wrapper.commit

    def commit(self):
        original(self)
        breaker.durable = True

    monkeypatch.setattr(wrapper, "commit", commit)
    with connection.execute_wrapper(breaker):
        yield breaker


@pytest.fixture
def client(tenant, api_client):
    return bearer(api_client, tenant.service_key)


def _answer(client, monkeypatch, method: str, path: str, body=None):
    with _connection_dies_once_durable(monkeypatch) as breaker:
        response = getattr(client, method)(path, body, format="json")
    return response, breaker


@pytest.mark.django_db(transaction=True)
class TestOnceDurableTheAnswerNeedsNoDatabase:
    def test_creating_a_flow_run(self, tenant, client, monkeypatch):
        flow = client.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()
        response, breaker = _answer(
            client, monkeypatch, "post", f"{tenant.prefix}/flow_runs/", {"flow_id": flow["id"]}
        )
        assert response.status_code == 201, (response.json(), breaker.refused)
        assert FlowRun.objects.for_workspace(tenant.workspace.id).filter(id=response.json()["id"]).exists()

    def test_creating_a_flow(self, tenant, client, monkeypatch):
        response, breaker = _answer(client, monkeypatch, "post", f"{tenant.prefix}/flows/", {"name": "etl"})
        assert response.status_code in (200, 201), (response.json(), breaker.refused)
        assert Flow.objects.for_workspace(tenant.workspace.id).filter(name="etl").exists()

    def test_setting_a_run_state(self, tenant, client, monkeypatch):
        flow = client.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()
        run = client.post(f"{tenant.prefix}/flow_runs/", {"flow_id": flow["id"]}, format="json").json()
        response, breaker = _answer(
            client,
            monkeypatch,
            "post",
            f"{tenant.prefix}/flow_runs/{run['id']}/set_state",
            {"state": {"type": "RUNNING", "name": "Running"}},
        )
        assert response.status_code == 201, (response.json(), breaker.refused)
        assert response.json()["status"] == "ACCEPT"

    def test_creating_a_variable(self, tenant, client, monkeypatch):
        response, breaker = _answer(
            client, monkeypatch, "post", f"{tenant.prefix}/variables/", {"name": "dsn", "value": "x"}
        )
        assert response.status_code == 201, (response.json(), breaker.refused)

    def test_writing_logs(self, tenant, client, monkeypatch):
        log = {"name": "l", "level": 20, "message": "m", "timestamp": "2026-01-01T00:00:00Z"}
        response, breaker = _answer(client, monkeypatch, "post", f"{tenant.prefix}/logs/", [log])
        assert response.status_code == 201, (response.content, breaker.refused)

    def test_creating_a_work_pool_and_a_deployment_and_its_run(self, tenant, client, monkeypatch):
        response, breaker = _answer(
            client, monkeypatch, "post", f"{tenant.prefix}/work_pools/", {"name": "pool", "type": "process"}
        )
        assert response.status_code == 201, (response.json(), breaker.refused)
        flow = client.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()
        response, breaker = _answer(
            client,
            monkeypatch,
            "post",
            f"{tenant.prefix}/deployments/",
            {"name": "nightly", "flow_id": flow["id"], "work_pool_name": "pool"},
        )
        assert response.status_code in (200, 201), (response.json(), breaker.refused)
        response, breaker = _answer(
            client,
            monkeypatch,
            "post",
            f"{tenant.prefix}/deployments/{response.json()['id']}/create_flow_run",
            {},
        )
        assert response.status_code == 201, (response.json(), breaker.refused)


class _LostInMiddleware:
    """A middleware whose database work (outside any view's handler) finds the connection gone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.django_db
class TestLostOutsideTheViewIsA503:
    """Lost where no view's handler sees it, the connection still answers a retryable 503 in the
    surface's shape (Django's last-resort handler), never a 500."""

    @pytest.fixture(autouse=True)
    def _lost_in_middleware(self, settings):
        settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}._LostInMiddleware"]

    @pytest.fixture
    def raw(self, api_client):
        api_client.raise_request_exception = False
        return api_client

    def test_a_prefect_route_answers_prefects_shape(self, tenant, raw):
        response = raw.post(f"{tenant.prefix}/flow_runs/", {}, format="json")
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        assert response.json() == {"detail": "The database is unavailable; retry shortly."}

    def test_a_control_plane_route_answers_its_shape(self, tenant, raw):
        response = raw.get(f"/api/accounts/{tenant.account.id}/members")
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        assert response.json() == {
            "detail": "The database is unavailable; retry shortly.",
            "code": "unavailable",
        }

    def test_scim_answers_an_rfc_7644_error(self, tenant, raw):
        response = raw.get(f"/scim/v2/{tenant.account.id}/Users")
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        assert response.json()["status"] == "503"
        assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]

    def test_a_console_page_answers_503(self, raw):
        response = raw.get("/console/")
        assert response.status_code == 503
        assert response["Retry-After"] == "1"

    def test_another_error_is_still_a_500(self, tenant, raw, monkeypatch):
        monkeypatch.setattr(_LostInMiddleware, "__call__", lambda self, request: 1 / 0)
        assert raw.post(f"{tenant.prefix}/flow_runs/", {}, format="json").status_code == 500
