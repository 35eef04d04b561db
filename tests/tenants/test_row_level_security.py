"""Row-level security, the last belt (``tenants.rls``): a query that forgot its workspace filter
returns only the workspace the request was authorized for, and no connection carries that
workspace to anything else.

The suite connects as a PostgreSQL superuser, which row-level security never applies to; the proofs
create, inside the test's transaction, a role without BYPASSRLS and with the grants the application
role has, and ``SET ROLE`` to it.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.apps import apps
from django.db import connection, connections, transaction
from django.db.backends.postgresql.base import DatabaseWrapper
from django.db.utils import DatabaseError

from config.settings.base import _pool_reset
from orchestration.models import Deployment, Flow, FlowRun, TaskRun
from orchestration.selectors.usage import deployments_count_for_account
from tenants import rls
from tenants.scoping import WorkspaceScopedModel
from tests.conftest import bearer
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row-level security is PostgreSQL's"
)

# Tables with a ``workspace_id`` column that are owned by the account, not by one workspace, and so
# carry no workspace policy: each with the reason.
NOT_WORKSPACE_OWNED = {
    "audit_auditlogentry": "the account's audit trail: hash-chained across its workspaces, and "
    "account-level entries have no workspace",
    "accounts_workspacedefaultrole": "the account's default role for a workspace, read by the gate",
    "accounts_ssogroupmapping": "the account's SSO configuration (a workspace or none)",
    "accounts_ssomanagedgrant": "the account's SSO bookkeeping, read at sign-in",
}


def _current_setting(raw_connection=None) -> str | None:
    raw = raw_connection or connection.connection
    return raw.execute("SELECT current_setting('controlplane.workspace_id', true)").fetchone()[0]


@pytest.fixture
def app_role(db):
    """A role like the application's: no BYPASSRLS, no ownership, the grants it needs. Created in
    the test's transaction, so it goes with the rollback."""
    name = f"cp_rls_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} NOLOGIN NOBYPASSRLS")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {name}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}")
    return name


@pytest.fixture
def as_app_role(app_role):
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {app_role}")
    yield app_role
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


def _flows(two_workspaces):
    a, b = two_workspaces
    flow_a = Flow.objects.for_workspace(a.workspace.id).create(workspace=a.workspace, name="a-flow")
    flow_b = Flow.objects.for_workspace(b.workspace.id).create(workspace=b.workspace, name="b-flow")
    for flow in (flow_a, flow_b):
        FlowRun.objects.unscoped().create(
            workspace_id=flow.workspace_id, flow=flow, name=f"run-of-{flow.name}"
        )
    return flow_a, flow_b


class TestPolicies:
    def test_every_workspace_owned_table_has_the_policy_forced(self, db):
        scoped = {
            model._meta.db_table
            for model in apps.get_models()
            if issubclass(model, WorkspaceScopedModel) and not model._meta.proxy
        }
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relrowsecurity AND c.relforcerowsecurity"
            )
            forced = {row[0] for row in cursor.fetchall()}
            cursor.execute(
                "SELECT tablename, cmd, qual, with_check FROM pg_policies "
                "WHERE schemaname = current_schema() AND policyname = %s",
                [rls.POLICY],
            )
            policies = {row[0]: row[1:] for row in cursor.fetchall()}
        assert scoped - forced == set(), "workspace-owned tables without row-level security forced"
        assert scoped - set(policies) == set(), "workspace-owned tables without the workspace policy"
        for table in scoped:
            command, qual, with_check = policies[table]
            assert command == "ALL" and with_check is None  # WITH CHECK is the USING expression
            assert "controlplane.workspace_id" in qual and "workspace_id =" in qual

    def test_every_table_with_a_workspace_column_is_covered_or_said_why_not(self, db):
        scoped = {m._meta.db_table for m in apps.get_models() if issubclass(m, WorkspaceScopedModel)}
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND column_name = 'workspace_id'"
            )
            with_column = {row[0] for row in cursor.fetchall()}
        assert with_column - scoped - set(NOT_WORKSPACE_OWNED) == set()
        assert set(NOT_WORKSPACE_OWNED) <= with_column  # no stale entry


class TestAForgottenFilterReturnsNothingElse:
    def test_raw_sql_and_the_orm_see_only_the_workspace_set(self, two_workspaces, as_app_role):
        a, b = two_workspaces
        flow_a, flow_b = _flows(two_workspaces)
        rls.database_workspace_set(a.workspace.id)
        with connection.cursor() as cursor:
            cursor.execute("SELECT DISTINCT workspace_id FROM orchestration_flow")
            assert [row[0] for row in cursor.fetchall()] == [a.workspace.id]
            cursor.execute("SELECT count(*) FROM orchestration_flowrun")
            assert cursor.fetchone()[0] == 1
        # The ORM with no workspace filter at all (the fail-closed manager's way out).
        assert list(Flow.objects.unscoped().all()) == [flow_a]
        assert {run.workspace_id for run in FlowRun.objects.unscoped().all()} == {a.workspace.id}
        assert Flow.objects.unscoped().filter(pk=flow_b.pk).first() is None
        # Even the grants of the other workspace (the accounts table) are out of sight.
        from accounts.models import WorkspaceRoleGrant

        assert {g.workspace_id for g in WorkspaceRoleGrant.objects.unscoped().all()} == {a.workspace.id}

    def test_writes_into_another_workspace_are_refused(self, two_workspaces, as_app_role):
        a, b = two_workspaces
        flow_a, flow_b = _flows(two_workspaces)
        rls.database_workspace_set(a.workspace.id)
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Flow.objects.unscoped().create(workspace_id=b.workspace.id, name="smuggled")
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Flow.objects.unscoped().filter(pk=flow_a.pk).update(workspace_id=b.workspace.id)
        # B's rows are not there to change or delete.
        assert Flow.objects.unscoped().filter(pk=flow_b.pk).update(name="renamed") == 0
        assert FlowRun.objects.unscoped().filter(flow_id=flow_b.pk).delete()[0] == 0
        # Its own workspace's rows it writes as usual.
        assert Flow.objects.unscoped().filter(pk=flow_a.pk).update(name="renamed") == 1
        rls.database_workspace_release()
        assert Flow.objects.unscoped().get(pk=flow_b.pk).name == "b-flow"

    def test_without_a_workspace_everything_is_visible(self, two_workspaces, as_app_role):
        a, b = two_workspaces
        _flows(two_workspaces)
        assert _current_setting() in (None, "")
        assert {f.workspace_id for f in Flow.objects.unscoped().all()} == {a.workspace.id, b.workspace.id}
        rls.database_workspace_set(b.workspace.id)
        assert {f.workspace_id for f in Flow.objects.unscoped().all()} == {b.workspace.id}
        rls.database_workspace_release()
        assert _current_setting() == ""
        assert {f.workspace_id for f in Flow.objects.unscoped().all()} == {a.workspace.id, b.workspace.id}

    def test_across_workspaces_is_the_visible_way_out_and_puts_the_workspace_back(
        self, two_workspaces, as_app_role
    ):
        a, b = two_workspaces
        flow_a, flow_b = _flows(two_workspaces)
        b_in_a_account = WorkspaceFactory(account=a.account)
        flow_a2 = Flow.objects.for_workspace(b_in_a_account.id).create(workspace=b_in_a_account, name="a2")
        for workspace_id, flow in ((a.workspace.id, flow_a), (b_in_a_account.id, flow_a2)):
            Deployment.objects.unscoped().create(workspace_id=workspace_id, flow=flow, name=f"d-{flow.name}")
        rls.database_workspace_set(a.workspace.id)
        assert Deployment.objects.unscoped().count() == 1
        # The account's plan counts every workspace's deployments, past the request's workspace.
        assert deployments_count_for_account(a.account) == 2
        assert _current_setting() == str(a.workspace.id)
        with transaction.atomic():
            assert deployments_count_for_account(a.account) == 2
            assert Deployment.objects.unscoped().count() == 1
        assert Deployment.objects.unscoped().count() == 1

    def test_superusers_are_never_held_by_it(self, two_workspaces):
        """Why the application must connect as a role without BYPASSRLS and not as a superuser."""
        _flows(two_workspaces)
        rls.database_workspace_set(two_workspaces[0].workspace.id)
        assert Flow.objects.unscoped().count() == 2
        rls.database_workspace_release()


class TestTheGateSetsItAndItIsReset:
    def test_a_request_sets_its_workspace_and_the_next_request_has_none(
        self, two_workspaces, api_client, as_app_role
    ):
        a, b = two_workspaces
        _flows(two_workspaces)
        seen: list[tuple[str, str | None]] = []

        def observe(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            seen.append((sql, _current_setting(context["connection"].connection)))
            return result

        with connection.execute_wrapper(observe):
            response = bearer(api_client, a.service_key).post(f"{a.prefix}/flows/filter", {}, format="json")
        assert response.status_code == 200
        assert [flow["name"] for flow in response.json()] == ["a-flow"]
        # Every query the view ran on the workspace's tables saw the workspace.
        workspace_reads = [value for sql, value in seen if "orchestration_" in sql]
        assert workspace_reads and set(workspace_reads) == {str(a.workspace.id)}
        # Reset when the request finished: the test client keeps the same connection.
        assert _current_setting() == ""

        seen.clear()
        with connection.execute_wrapper(observe):
            response = bearer(api_client, a.member_key).get(f"/api/accounts/{a.account.id}/")
        assert response.status_code == 200
        assert seen and {value for _, value in seen} == {""}
        assert {f.workspace_id for f in Flow.objects.unscoped().all()} == {a.workspace.id, b.workspace.id}

    def test_a_task_run_id_taken_in_another_workspace_is_still_a_409(
        self, two_workspaces, api_client, as_app_role
    ):
        a, b = two_workspaces
        flow_a, flow_b = _flows(two_workspaces)
        taken = TaskRun.objects.unscoped().create(
            id=uuid.uuid4(), workspace_id=b.workspace.id, name="b-task", task_key="k", dynamic_key="0"
        )
        response = bearer(api_client, a.service_key).post(
            f"{a.prefix}/task_runs/",
            {"id": str(taken.id), "task_key": "k", "dynamic_key": "1"},
            format="json",
        )
        assert response.status_code == 409, response.content
        assert _current_setting() == ""


@pytest.mark.django_db(transaction=True)
class TestNoConnectionCarriesAWorkspaceToAnotherUser:
    """A pooled connection, configured as production configures it, and threads from
    ``sync_to_async``."""

    ALIAS = "rls_pool_test"

    def _wrapper(self) -> DatabaseWrapper:
        settings_dict = {
            **connections["default"].settings_dict,
            "CONN_MAX_AGE": 0,
            "OPTIONS": {"pool": {"min_size": 1, "max_size": 1, "timeout": 10, "reset": _pool_reset}},
        }
        wrapper = DatabaseWrapper(settings_dict, alias=self.ALIAS)
        connections[self.ALIAS] = wrapper  # this thread's
        return wrapper

    def test_a_pooled_connection_comes_back_reset_to_another_thread(self, two_workspaces):
        a, _ = two_workspaces
        seen: dict[str, tuple[int, str | None]] = {}

        def request_for_a() -> None:
            wrapper = self._wrapper()
            rls.database_workspace_set(a.workspace.id, using=self.ALIAS)
            raw = wrapper.connection
            seen["a"] = (raw.info.backend_pid, _current_setting(raw))
            wrapper.close()  # back to the pool, as at the end of a request

        def next_user() -> None:
            wrapper = self._wrapper()
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid(), current_setting('controlplane.workspace_id', true)")
                seen["next"] = cursor.fetchone()
            wrapper.close()

        try:
            async_to_sync(sync_to_async(request_for_a, thread_sensitive=False))()
            async_to_sync(sync_to_async(next_user, thread_sensitive=False))()
        finally:
            self._wrapper().close_pool()
        assert seen["a"][1] == str(a.workspace.id)
        assert seen["next"][0] == seen["a"][0], "the pool of one handed out another connection"
        assert seen["next"][1] in ("", None)

    def test_the_pool_sends_nothing_back_for_a_connection_that_carried_none(self, db):
        """A connection the gate never set is returned as is: a value set behind the module's back
        survives ``pool_reset``, so no statement was sent."""
        wrapper = self._wrapper()
        try:
            raw = wrapper.cursor().cursor.connection
            raw.execute("SELECT set_config('controlplane.workspace_id', 'untouched', false)")
            assert rls.carried_by(raw) is None
            rls.pool_reset(raw)
            assert _current_setting(raw) == "untouched"
            raw.execute("RESET controlplane.workspace_id")
            wrapper.close()
        finally:
            self._wrapper().close_pool()

    def test_a_unit_of_work_in_a_thread_resets_when_it_ends(self, two_workspaces):
        a, _ = two_workspaces
        seen: dict[str, str | None] = {}
        ready = threading.Event()

        def unit() -> None:
            with rls.database_workspace(a.workspace.id):
                seen["inside"] = _current_setting()
            seen["after"] = _current_setting()
            ready.set()
            connection.close()

        async_to_sync(sync_to_async(unit, thread_sensitive=False))()
        assert ready.is_set()
        assert seen == {"inside": str(a.workspace.id), "after": ""}
