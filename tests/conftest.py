from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.api_keys.services import api_key_create
from accounts.permissions import AccountRole, WorkspaceRole
from audit.actors import SYSTEM
from config.embedded import prepare
from tests.factories import (
    AccountFactory,
    GrantFactory,
    MembershipFactory,
    ServiceAccountFactory,
    UserFactory,
    WorkspaceFactory,
)


def pytest_configure(config):
    """The suite starts as every process does (``VAR_DIR`` holds the SQLite test database). WhiteNoise
    serves collected static files and the tests run without collectstatic: STATIC_ROOT exists, empty."""
    prepare()
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@dataclass
class Tenant:
    """One account with one workspace, a plain member with Developer access, and a service
    account with Developer access, each with a key."""

    account: object
    workspace: object
    member: object
    member_key: str
    service_account: object
    service_key: str

    @property
    def prefix(self) -> str:
        return f"/api/accounts/{self.account.id}/workspaces/{self.workspace.id}"

    @property
    def handle_prefix(self) -> str:
        return f"/api/accounts/{self.account.handle}/workspaces/{self.workspace.handle}"


def make_tenant(**account_fields) -> Tenant:
    account = AccountFactory(**account_fields)
    workspace = WorkspaceFactory(account=account)
    member = UserFactory()
    MembershipFactory(account=account, user=member, role=AccountRole.MEMBER)
    GrantFactory(workspace=workspace, user=member, role=WorkspaceRole.DEVELOPER)
    service_account = ServiceAccountFactory(account=account)
    GrantFactory(workspace=workspace, service_account=service_account, role=WorkspaceRole.DEVELOPER)
    _, member_key = api_key_create(owner=member, name="test", actor=SYSTEM)
    _, service_key = api_key_create(owner=service_account, name="test", actor=SYSTEM)
    return Tenant(account, workspace, member, member_key, service_account, service_key)


@pytest.fixture(autouse=True)
def _fresh_auth_memo():
    """Each test's rows are rolled back without signals: no memo (keys and access, pools and
    poll answers) may outlive its test."""
    from accounts import authcache
    from orchestration.selectors.work_pools import pool_memo_clear

    authcache.clear()
    pool_memo_clear()
    yield
    authcache.clear()
    pool_memo_clear()


@pytest.fixture(autouse=True)
def _joinable_eager_results():
    """Celery keeps "a task is running here, joining would block" in one process-wide flag that
    each eager task sets and restores around itself. Eager tasks run at once in two threads (a live
    server's and the test's) can restore each other's value and leave it set, and every later
    ``.get()`` in the process then refuses. Each test starts with it cleared."""
    from celery.result import _set_task_join_will_block

    _set_task_join_will_block(False)
    yield


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test gets its own channel layer instance: a Redis layer binds its receive machinery to
    the event loop that first used it (a live server's thread, another test's loop)."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def tenant(db) -> Tenant:
    return make_tenant()


@pytest.fixture
def two_workspaces(db) -> tuple[Tenant, Tenant]:
    """Two tenants in two accounts: what one may reach, the other must not."""
    return make_tenant(), make_tenant()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def bearer(client: APIClient, key: str, scheme: str = "Bearer") -> APIClient:
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client
