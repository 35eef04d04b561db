"""Prefect's UI under each workspace: the entry document and ui-settings behind the session, the
shared assets, the session's API calls through the gate with Prefect's CSRF protocol, and the
landing page's links."""

from __future__ import annotations

import gzip
import re

import pytest
from django.test import Client

from accounts.permissions import WorkspaceRole
from console.ui_bundle import ASSETS_URL, BASE_META, bundles
from orchestration.models.variables import Variable
from tests.accounts.test_account_api import make_org
from tests.accounts.test_ip_allowlist import _enforce, _put
from tests.conftest import bearer
from tests.factories import GrantFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

CLIENT_ID = "6c2f4f1e-0000-4000-8000-000000000001"


def ui(tenant) -> str:
    return f"/account/{tenant.account.id}/workspace/{tenant.workspace.id}"


def browser(user, **extra) -> Client:
    c = Client(enforce_csrf_checks=True, **extra)
    c.force_login(user)
    return c


def base_of(page: str) -> str:
    return re.search(rf'<meta name="{BASE_META}" content="([^"]*)">', page).group(1)


def csrf_headers(c: Client, tenant, client_id: str = CLIENT_ID) -> dict:
    answer = c.get(f"{tenant.prefix}/csrf-token", {"client": client_id})
    assert answer.status_code == 200, answer.content
    return {"HTTP_PREFECT_CSRF_TOKEN": answer.json()["token"], "HTTP_PREFECT_CSRF_CLIENT": client_id}


def create_variable(c: Client, tenant, name: str = "from_ui", **headers):
    return c.post(
        f"{tenant.prefix}/variables/", {"name": name, "value": 1}, content_type="application/json", **headers
    )


class TestEntryDocument:
    def test_every_page_of_the_ui_is_the_entry_document_with_the_workspace_base(self, tenant):
        c = browser(tenant.member)
        c.cookies["prefect_ui_version"] = "v1"
        for path in ("/runs", "/runs/flow-run/5b8b1a5e-8c9c-4a49-9c43-3a3c6b7a2f10", "/deployments", "/"):
            response = c.get(ui(tenant) + path)
            assert response.status_code == 200, (path, response.status_code)
            page = response.content.decode()
            assert base_of(page) == ui(tenant)
            assert "PREFECT_UI_SERVE_BASE_REPLACE_PLACEHOLDER" not in page
            assert f'src="{ASSETS_URL}{bundles()["v1"].key}/assets/' in page
            assert response["Cache-Control"] == "no-cache, private"

    def test_the_v2_ui_answers_under_v2_with_its_own_base(self, tenant):
        page = browser(tenant.member).get(ui(tenant) + "/v2/runs").content.decode()
        assert base_of(page) == ui(tenant) + "/v2"
        assert f"{ASSETS_URL}{bundles()['v2'].key}/assets/" in page

    def test_the_bare_base_goes_to_the_saved_choice_else_v2(self, tenant):
        c = browser(tenant.member)
        assert c.get(ui(tenant) + "/")["Location"] == ui(tenant) + "/v2/"
        c.cookies["prefect_ui_version"] = "v1"
        assert c.get(ui(tenant) + "/").status_code == 200

    def test_handles_redirect_to_ids(self, tenant):
        c = browser(tenant.member)
        by_handle = f"/account/{tenant.account.handle}/workspace/{tenant.workspace.handle}"
        response = c.get(by_handle + "/runs/flow-run/abc?tab=Logs")
        assert response.status_code == 302
        assert response["Location"] == ui(tenant) + "/runs/flow-run/abc?tab=Logs"
        assert c.get(by_handle + "/ui-settings")["Location"] == ui(tenant) + "/ui-settings"

    def test_not_signed_in_gets_the_sign_in_page_and_comes_back(self, tenant):
        response = Client().get(ui(tenant) + "/runs/flow-run/abc")
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")
        assert "runs/flow-run/abc" in response["Location"]
        assert Client().get(ui(tenant) + "/ui-settings").status_code == 302

    def test_a_person_without_access_gets_404_never_the_bundle(self, two_workspaces):
        a, b = two_workspaces
        c = browser(a.member)
        for path in ("/", "/runs", "/v2/", "/ui-settings"):
            response = c.get(ui(b) + path)
            assert response.status_code == 404, path
            assert BASE_META.encode() not in response.content and b"api_url" not in response.content
        # A's account id with B's workspace id resolves nothing either.
        mixed = f"/account/{a.account.id}/workspace/{b.workspace.id}/runs"
        assert c.get(mixed).status_code == 404

    def test_a_member_of_the_account_without_a_grant_gets_404(self, tenant):
        outsider = UserFactory()
        MembershipFactory(account=tenant.account, user=outsider, role="member")
        assert browser(outsider).get(ui(tenant) + "/runs").status_code == 404

    def test_the_ip_allowlist_applies_to_the_ui(self):
        org = make_org()
        _put(org, [{"ip_network": "127.0.0.1"}])
        _enforce(org, True)
        base = f"/account/{org.account.id}/workspace/{org.workspace.id}"
        refused = browser(org.owner, REMOTE_ADDR="203.0.113.7")
        response = refused.get(base + "/runs")
        assert response.status_code == 403 and "203.0.113.7" in response.json()["detail"]
        assert refused.get(base + "/ui-settings").status_code == 403
        assert browser(org.owner).get(base + "/runs").status_code == 200


class TestUiSettings:
    def test_names_the_workspace_api_with_csrf_on(self, tenant):
        answer = browser(tenant.member).get(ui(tenant) + "/ui-settings").json()
        assert answer == {
            "api_url": f"http://testserver{tenant.prefix}",
            "csrf_enabled": True,
            "auth": None,
            "flags": [],
            "default_ui": "v2",
            "available_uis": ["v1", "v2"],
            "v1_base_url": ui(tenant),
            "v2_base_url": ui(tenant) + "/v2",
        }


class TestSharedAssets:
    def test_hashed_assets_are_served_once_for_all_workspaces_compressed_and_immutable(self, two_workspaces):
        a, b = two_workspaces
        pages = [browser(t.member).get(ui(t) + "/v2/runs").content.decode() for t in (a, b)]
        scripts = [re.search(r'<script type="module" crossorigin src="([^"]+)"', p).group(1) for p in pages]
        assert scripts[0] == scripts[1]  # one asset path for every workspace
        response = Client().get(scripts[0], HTTP_ACCEPT_ENCODING="gzip")
        assert response.status_code == 200
        assert response["Content-Encoding"] == "gzip"
        assert "immutable" in response["Cache-Control"] and "max-age=315360000" in response["Cache-Control"]
        body = gzip.decompress(b"".join(response.streaming_content)).decode()
        assert "PREFECT_UI_SERVE_BASE_REPLACE_PLACEHOLDER" not in body
        assert BASE_META in body  # the app base is read from the entry document

    def test_css_and_the_preload_helper_point_at_the_shared_path(self):
        for bundle in bundles().values():
            texts = [p.read_text() for p in (bundle.root / "assets").glob("*") if p.suffix in (".js", ".css")]
            assert not [t for t in texts if "PREFECT_UI_SERVE_BASE_REPLACE_PLACEHOLDER" in t]
            assert any(f"url({bundle.assets_url}/" in t for t in texts)

    def test_unhashed_files_are_served_with_a_short_cache(self):
        key = bundles()["v1"].key
        response = Client().get(f"{ASSETS_URL}{key}/ico/favicon.ico")
        assert response.status_code == 200 and "immutable" not in response["Cache-Control"]

    def test_files_the_uis_name_from_the_root_go_to_the_shared_copies(self):
        for path in ("/favicon.ico", "/completed.svg", "/ico/completed.svg"):
            response = Client().get(path)
            assert response.status_code == 302 and response["Location"].startswith(ASSETS_URL), path
            assert Client().get(response["Location"]).status_code == 200
        assert Client().get("/ico/undefined.svg").status_code == 204


class TestSessionAndCsrf:
    def test_the_session_reads_the_workspace_api(self, tenant):
        c = browser(tenant.member)
        assert c.get(f"{tenant.prefix}/health").status_code == 200
        # A read sent as POST (Prefect's filters) is a write to CSRF: the UI sends its token.
        response = c.post(
            f"{tenant.prefix}/flows/filter", {}, content_type="application/json", **csrf_headers(c, tenant)
        )
        assert response.status_code == 200 and response.json() == []

    def test_a_write_with_the_sessions_token_is_done(self, tenant):
        c = browser(tenant.member)
        response = create_variable(c, tenant, **csrf_headers(c, tenant))
        assert response.status_code == 201, response.content
        assert Variable.objects.for_workspace(tenant.workspace.pk).filter(name="from_ui").exists()

    def test_the_token_answer_has_prefects_shape(self, tenant):
        answer = browser(tenant.member).get(f"{tenant.prefix}/csrf-token", {"client": CLIENT_ID}).json()
        assert set(answer) == {"id", "created", "updated", "token", "client", "expiration"}
        assert answer["client"] == CLIENT_ID

    @pytest.mark.parametrize(
        ("headers", "detail"),
        [
            ({}, "CSRF Failed"),
            ({"HTTP_PREFECT_CSRF_CLIENT": CLIENT_ID}, "Missing CSRF token."),
            ({"HTTP_PREFECT_CSRF_TOKEN": "9999999999.abc"}, "Missing client identifier."),
            (
                {"HTTP_PREFECT_CSRF_TOKEN": "9999999999.abc", "HTTP_PREFECT_CSRF_CLIENT": CLIENT_ID},
                "Invalid CSRF token or client identifier.",
            ),
        ],
    )
    def test_a_cookie_write_without_a_valid_token_is_refused_and_does_nothing(self, tenant, headers, detail):
        response = create_variable(browser(tenant.member), tenant, **headers)
        assert response.status_code == 403
        assert detail in response.json()["detail"]
        assert not Variable.objects.for_workspace(tenant.workspace.pk).exists()

    def test_a_token_of_another_client_or_session_is_refused(self, tenant):
        c = browser(tenant.member)
        other_session = browser(tenant.member)
        headers = csrf_headers(other_session, tenant)
        assert create_variable(c, tenant, **headers).status_code == 403
        headers = csrf_headers(c, tenant)
        headers["HTTP_PREFECT_CSRF_CLIENT"] = "someone-else"
        assert create_variable(c, tenant, **headers).status_code == 403
        assert not Variable.objects.for_workspace(tenant.workspace.pk).exists()

    def test_bearer_keys_need_no_token_and_get_none(self, tenant, api_client):
        client = bearer(api_client, tenant.member_key)
        assert (
            client.post(f"{tenant.prefix}/variables/", {"name": "k", "value": 1}, format="json").status_code
            == 201
        )
        assert client.get(f"{tenant.prefix}/csrf-token", {"client": CLIENT_ID}).status_code == 422

    def test_a_viewer_session_reads_but_may_not_write(self, tenant):
        viewer = UserFactory()
        MembershipFactory(account=tenant.account, user=viewer, role="member")
        GrantFactory(workspace=tenant.workspace, user=viewer, role=WorkspaceRole.VIEWER)
        c = browser(viewer)
        assert c.get(ui(tenant) + "/runs").status_code == 200
        response = create_variable(c, tenant, **csrf_headers(c, tenant))
        assert response.status_code == 403 and "Missing the scope" in response.json()["detail"]
        assert not Variable.objects.for_workspace(tenant.workspace.pk).exists()

    def test_signing_out_ends_the_uis_access_at_once(self, tenant):
        c = browser(tenant.member)
        headers = csrf_headers(c, tenant)
        cookie = c.cookies["sessionid"].value
        c.get("/")  # the landing page's sign-out form sets Django's CSRF cookie
        signed_out = c.post("/logout/", HTTP_X_CSRFTOKEN=c.cookies["csrftoken"].value)
        assert signed_out.status_code == 302
        replay = Client(enforce_csrf_checks=True)
        replay.cookies["sessionid"] = cookie
        assert replay.get(f"{tenant.prefix}/health").status_code == 401
        assert replay.get(ui(tenant) + "/runs").status_code == 302
        assert create_variable(replay, tenant, **headers).status_code == 401
        assert not Variable.objects.for_workspace(tenant.workspace.pk).exists()


class TestLandingPage:
    def test_lists_the_workspaces_the_person_can_open_each_linking_to_its_ui(self, two_workspaces):
        a, b = two_workspaces
        page = browser(a.member).get("/").content.decode()
        assert f'href="{ui(a)}/"' in page
        assert str(b.workspace.id) not in page
