"""One gate, three surfaces: the HTTP view bases, the event websockets' handshake and the worker poll
answered from memory decide the same for every principal × workspace × scope × address.

The HTTP surface is a probe view on ``WorkspaceApiView`` declaring the scope; the websocket surface
is the handshake's ``authorize_sync``; the memory surface is the gate's memory-only mode that the
poll fast path uses (after one full request warmed it, as a worker's first poll does), and for the
poll's own scope the real fast path against a real pool. Memory answers ALLOW exactly when HTTP
answers 200 (never a refusal of its own), and the websocket accepts exactly when HTTP answers 200.
"""

from __future__ import annotations

import itertools
import json

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory

from access.gate import (
    Caller,
    Outcome,
    Surface,
    authenticate_key_from_memory,
    authorize_workspace_from_memory,
)
from access.views import WorkspaceApiView
from accounts.api_keys.services import api_key_create, api_key_revoke
from accounts.models import IpAllowlistEntry
from accounts.permissions import AccountRole, WorkspaceRole
from audit.actors import SYSTEM
from orchestration.api.poll_fast_path import POLL_PATH, REQUIRED_SCOPE, answer_from_memory
from orchestration.events.auth import authorize_sync
from tests.conftest import make_tenant
from tests.factories import GrantFactory, MembershipFactory, ServiceAccountFactory, UserFactory
from tests.orchestration.test_work_pools import make_pool, make_run

pytestmark = pytest.mark.django_db

ALLOWED_IP = "127.0.0.1"
REFUSED_IP = "203.0.113.9"
NEEDS = ("see_flows", "run_flows", "see_events", "manage_events", REQUIRED_SCOPE, "manage_acls")
POOL = "gate-pool"

_probes: dict[str, type] = {}


def _probe(need: str):
    if need not in _probes:
        _probes[need] = type(
            f"Probe_{need}",
            (WorkspaceApiView,),
            {"required_scopes": {"GET": need}, "get": lambda self, request, **kw: Response({"ok": True})},
        )
    return _probes[need].as_view()


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def world(settings):
    settings.TRUSTED_PROXIES, settings.TRUSTED_PROXY_COUNT = [], 0
    home = make_tenant(plan="enterprise")
    other = make_tenant(plan="enterprise")
    # Home enforces an allowlist that lets in ALLOWED_IP only.
    IpAllowlistEntry.objects.create(account=home.account, ip_network=f"{ALLOWED_IP}/32", enabled=True)
    home.account.settings = {**(home.account.settings or {}), "enforce_ip_allowlist": True}
    home.account.save()

    def person(role: str | None, account_role: str = AccountRole.MEMBER, scopes=None) -> str:
        user = UserFactory()
        MembershipFactory(account=home.account, user=user, role=account_role)
        if role is not None:
            GrantFactory(workspace=home.workspace, user=user, role=role)
        return api_key_create(owner=user, name="k", actor=SYSTEM, scopes=scopes)[1]

    worker = ServiceAccountFactory(account=home.account)
    GrantFactory(workspace=home.workspace, service_account=worker, role=WorkspaceRole.WORKER)
    revoked_key, revoked = api_key_create(owner=home.member, name="old", actor=SYSTEM)
    api_key_revoke(key=revoked_key, actor=SYSTEM)
    keys = {
        "owner": person(None, AccountRole.OWNER),
        "developer": home.member_key,
        "viewer": person(WorkspaceRole.VIEWER),
        "no-grant member": person(None),
        "worker bot": api_key_create(owner=worker, name="w", actor=SYSTEM)[1],
        "scoped-down key": person(WorkspaceRole.DEVELOPER, scopes=["see_flows"]),
        "other tenant": other.member_key,
        "revoked": revoked,
        "malformed": "pnu_not-a-key",
    }
    workspaces = {
        "home by id": (str(home.account.id), str(home.workspace.id)),
        "home by handle": (home.account.handle, home.workspace.handle),
        "other tenant's": (str(other.account.id), str(other.workspace.id)),
        "missing": (str(home.account.id), "00000000-0000-0000-0000-000000000000"),
    }
    return home, keys, workspaces


def _http(key: str, refs: tuple[str, str], need: str, ip: str) -> int:
    account_ref, workspace_ref = refs
    request = APIRequestFactory().get("/probe", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip)
    return _probe(need)(request, account_ref=account_ref, workspace_ref=workspace_ref).status_code


def _memory(key: str, refs: tuple[str, str], need: str, ip: str) -> Outcome:
    api_key = authenticate_key_from_memory(key, ip=ip)
    if api_key is None:
        return Outcome.UNKNOWN
    caller = Caller(principal=api_key.owner, ip=ip, surface=Surface.API, api_key=api_key)
    return authorize_workspace_from_memory(caller, *refs, need).outcome


def test_the_three_surfaces_agree(world):
    home, keys, workspaces = world
    table = []
    for (who, key), (where, refs), need, ip in itertools.product(
        keys.items(), workspaces.items(), NEEDS, (ALLOWED_IP, REFUSED_IP)
    ):
        status = _http(key, refs, need, ip)
        socket = authorize_sync(token=key, account_ref=refs[0], workspace_ref=refs[1], scopes=(need,), ip=ip)
        # A second full request: the first recorded the key's use and stamped the allowlist entry,
        # as a worker's first poll does; now memory holds what the full path read.
        assert _http(key, refs, need, ip) == status
        memory = _memory(key, refs, need, ip)
        table.append((who, where, need, ip, status, socket is not None, memory))
        row = f"{who} / {where} / {need} / {ip}: http {status}, socket {socket}, memory {memory}"
        assert status in (200, 401, 403, 404), row
        assert (socket is not None) == (status == 200), row
        assert (memory is Outcome.ALLOW) == (status == 200), row
        assert memory in (Outcome.ALLOW, Outcome.UNKNOWN), row  # memory never refuses on its own

    def status_of(who, where, need, ip):
        return next(row[4] for row in table if row[:4] == (who, where, need, ip))

    # The table means what it should (a few anchors, so agreement cannot come from refusing all).
    assert status_of("owner", "home by id", "manage_acls", ALLOWED_IP) == 200
    assert status_of("developer", "home by handle", "run_flows", ALLOWED_IP) == 200
    assert status_of("developer", "home by id", "run_flows", REFUSED_IP) == 403
    assert status_of("viewer", "home by id", "see_flows", ALLOWED_IP) == 200
    assert status_of("viewer", "home by id", "run_flows", ALLOWED_IP) == 403
    assert status_of("worker bot", "home by id", REQUIRED_SCOPE, ALLOWED_IP) == 200
    assert status_of("scoped-down key", "home by id", "see_flows", ALLOWED_IP) == 200
    assert status_of("scoped-down key", "home by id", "run_flows", ALLOWED_IP) == 403
    assert status_of("no-grant member", "home by id", "see_flows", ALLOWED_IP) == 404
    assert status_of("other tenant", "home by id", "see_flows", ALLOWED_IP) == 404
    assert status_of("other tenant", "other tenant's", "see_flows", REFUSED_IP) == 200  # no allowlist there
    assert status_of("developer", "other tenant's", "see_flows", ALLOWED_IP) == 404
    assert status_of("owner", "missing", "see_flows", ALLOWED_IP) == 404
    assert status_of("revoked", "home by id", "see_flows", ALLOWED_IP) == 401
    assert status_of("malformed", "home by id", "see_flows", ALLOWED_IP) == 401


def test_the_poll_fast_path_answers_exactly_when_the_full_poll_would(world):
    home, keys, workspaces = world
    owner = APIClient(REMOTE_ADDR=ALLOWED_IP)
    owner.credentials(HTTP_AUTHORIZATION=f"Bearer {keys['owner']}")
    pool = make_pool(owner, home, name=POOL)
    make_run(home, pool["default_queue_id"])
    api_client = APIClient()
    answered = 0
    body = json.dumps({"work_queue_names": [], "scheduled_before": str(timezone.now())}).encode()
    for (who, key), (where, refs), ip in itertools.product(
        keys.items(), workspaces.items(), (ALLOWED_IP, REFUSED_IP)
    ):
        path = f"/api/accounts/{refs[0]}/workspaces/{refs[1]}/work_pools/{POOL}/get_scheduled_flow_runs"
        full = api_client.post(
            path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip
        )
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")],
            "client": (ip, 50000),
        }
        answer_from_memory(scope, POLL_PATH.match(path), body)  # a first poll may schedule refreshes
        full = api_client.post(
            path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip
        )
        answer, _ = answer_from_memory(scope, POLL_PATH.match(path), body)
        row = f"{who} / {where} / {ip}: full {full.status_code}, memory {'answer' if answer else None}"
        if full.status_code != 200:
            assert answer is None, row
            continue
        # The full poll warmed memory: now the fast path answers, with the full path's answer.
        assert answer is not None or who in ("no-grant member",), row
        if answer is not None:
            assert _without_clock(json.loads(answer)) == _without_clock(full.json()), row
        answered += answer is not None
    assert answered >= 4  # owner, developer and worker bot, by id and by handle, from the allowed address


def _without_clock(entries):
    for entry in entries:
        entry["flow_run"].pop("estimated_start_time_delta", None)
    return entries
