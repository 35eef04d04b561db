"""Input that could be stored but not read back is refused at the door, on every surface.

A lone surrogate ("\\ud800") in a text, a non-finite number (1e999), an integer beyond 64 bits and
JSON nested past the parser's depth are a 422 over HTTP (SCIM's 400) and a dropped frame over the
events websocket, and leave nothing stored: every later read of the workspace still answers 200.
"""

from __future__ import annotations

import json

import pytest

from accounts.models import ServiceAccount
from core.parsers import MAX_DEPTH, BadJson, NotJson, loads, suspect
from orchestration.models import ConcurrencyLimitV2, Event, FlowRun, Variable
from tests.conftest import bearer
from tests.orchestration.events.conftest import events_path, make_event, open_cloud, run

LONE_SURROGATE = '"\\ud800"'  # the JSON escape of an unpaired high surrogate


def _raw(client, path, text: str):
    return client.post(path, data=text.encode(), content_type="application/json")


class TestTheParser:
    @pytest.mark.parametrize(
        "text",
        [
            '{"a": "\\ud800"}',
            '{"a": "x\\udc00y"}',
            '{"\\ud800": 1}',
            '{"a": 1e999}',
            '{"a": -1e999}',
            '{"a": NaN}',
            '{"a": Infinity}',
            '{"a": 18446744073709551616}',
            '{"a": -9223372036854775809}',
            '{"a": "\\u0000"}',
            "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
            "[" * 10_000 + "]" * 10_000,
        ],
    )
    def test_what_cannot_be_stored_and_read_back_is_refused(self, text):
        assert suspect(text)
        with pytest.raises(BadJson):
            loads(text)

    @pytest.mark.parametrize(
        "text",
        [
            '{"a": "\\ud83d\\ude00", "b": "\u00e9t\u00e9"}',  # a paired surrogate escape, and UTF-8
            '{"a": 9223372036854775807, "b": -9223372036854775808, "c": 1e308}',
            "[" * MAX_DEPTH + "]" * MAX_DEPTH,
            '{"a": "\\\\ud800"}',  # an escaped backslash: the text \ud800, six characters
        ],
    )
    def test_what_can_is_taken_as_it_was_sent(self, text):
        assert loads(text) == json.loads(text)

    def test_text_that_is_not_json_is_told_apart(self):
        with pytest.raises(NotJson):
            loads(b"{not json")
        with pytest.raises(NotJson):
            loads(b"\xff\xfe{")


@pytest.mark.django_db
class TestOverHttp:
    def test_a_variable_with_a_lone_surrogate_is_refused_and_the_workspace_still_reads(
        self, tenant, api_client
    ):
        dev = bearer(api_client, tenant.service_key)
        response = _raw(dev, f"{tenant.prefix}/variables/", f'{{"name": "v", "value": {LONE_SURROGATE}}}')
        assert response.status_code == 422, response.content
        assert "surrogate" in response.json()["detail"]
        assert not Variable.objects.for_workspace(tenant.workspace.id).exists()
        assert dev.post(f"{tenant.prefix}/variables/filter", {}, format="json").status_code == 200

    def test_a_flow_run_name_with_a_lone_surrogate_is_refused(self, tenant, api_client):
        dev = bearer(api_client, tenant.service_key)
        flow = dev.post(f"{tenant.prefix}/flows/", {"name": "f"}, format="json").json()
        body = f'{{"flow_id": "{flow["id"]}", "name": {LONE_SURROGATE}}}'
        assert _raw(dev, f"{tenant.prefix}/flow_runs/", body).status_code == 422
        assert not FlowRun.objects.for_workspace(tenant.workspace.id).exists()
        assert dev.post(f"{tenant.prefix}/flow_runs/filter", {}, format="json").status_code == 200

    def test_a_non_finite_decay_is_refused_and_no_limit_is_stored(self, tenant, api_client):
        dev = bearer(api_client, tenant.service_key)
        body = '{"name": "db", "limit": 1, "slot_decay_per_second": 1e999}'
        response = _raw(dev, f"{tenant.prefix}/v2/concurrency_limits/", body)
        assert response.status_code == 422, response.content
        assert not ConcurrencyLimitV2.objects.for_workspace(tenant.workspace.id).exists()
        assert dev.post(f"{tenant.prefix}/v2/concurrency_limits/filter", {}, format="json").status_code == 200

    def test_integers_beyond_64_bits_are_refused(self, tenant, api_client):
        dev = bearer(api_client, tenant.service_key)
        response = _raw(
            dev, f"{tenant.prefix}/flow_runs/filter", '{"limit": 1000000000000000000000000000000}'
        )
        assert response.status_code == 422, response.content

    def test_json_nested_ten_thousand_deep_is_a_422_not_a_500(self, tenant, api_client):
        dev = bearer(api_client, tenant.service_key)
        deep = '{"name": "v", "value": ' + "[" * 10_000 + "]" * 10_000 + "}"
        response = _raw(dev, f"{tenant.prefix}/variables/", deep)
        assert response.status_code == 422, response.content
        assert not Variable.objects.for_workspace(tenant.workspace.id).exists()

    def test_the_control_plane_refuses_the_same(self, tenant, api_client):
        from accounts.api_keys.services import api_key_create
        from accounts.permissions import AccountRole
        from accounts.services import membership_add
        from audit.actors import SYSTEM
        from tests.factories import UserFactory

        owner = UserFactory()
        membership_add(account=tenant.account, user=owner, role=AccountRole.OWNER, actor=SYSTEM)
        client = bearer(api_client, api_key_create(owner=owner, name="k", actor=SYSTEM)[1])
        before = ServiceAccount.objects.filter(account=tenant.account).count()
        response = _raw(client, f"/api/accounts/{tenant.account.id}/bots/", f'{{"name": {LONE_SURROGATE}}}')
        assert response.status_code == 422, response.content
        assert "surrogate" in response.json()["detail"]
        assert ServiceAccount.objects.filter(account=tenant.account).count() == before


@pytest.mark.django_db(transaction=True)
def test_an_event_that_cannot_be_stored_is_dropped_from_the_socket_and_the_rest_are_kept(tenant, api_client):
    good = make_event()
    poisoned = [
        json.dumps(make_event()).replace('"payload": {}', '"payload": {"text": "\\ud800"}'),
        json.dumps(make_event()).replace('"payload": {}', '"payload": {"n": 1e999}'),
        json.dumps(make_event()).replace('"payload": {}', '"payload": {"n": 99999999999999999999999}'),
        json.dumps(make_event()).replace('"payload": {}', '"payload": {"d": ' + "[" * 500 + "]" * 500 + "}"),
    ]

    async def scenario():
        ws = await open_cloud(events_path(tenant, "in"), tenant.service_key)
        for frame in poisoned:
            await ws.send_to(text_data=frame)
        await ws.send_to(text_data=json.dumps(good))
        await ws.disconnect()

    run(scenario)
    stored = {str(i) for i in Event.objects.for_workspace(tenant.workspace.pk).values_list("id", flat=True)}
    assert stored == {good["id"]}
    dev = bearer(api_client, tenant.service_key)
    assert dev.post(f"{tenant.prefix}/events/filter", {}, format="json").status_code == 200


@pytest.mark.django_db
def test_scim_refuses_a_body_it_could_not_read_back_with_rfc_7644s_error(tenant):
    from accounts.scim.services import scim_token_create
    from audit.actors import SYSTEM
    from tests.accounts.test_scim import Scim

    scim = Scim(tenant.account, scim_token_create(account=tenant.account, actor=SYSTEM, name="okta")[1])
    response = scim.http.post(
        f"{scim.base}/Users",
        b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "\\ud800@x.example"}',
        content_type="application/scim+json",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["scimType"] == "invalidValue" and body["status"] == "400"


@pytest.mark.django_db
class TestOddRequests:
    @pytest.mark.parametrize(
        "path",
        [
            "/api/accounts/%00/workspaces/x/flows/filter",
            "/api/accounts/{account}/workspaces/%00/flows/filter",
            "/api/accounts/{account}/workspaces/{workspace}/variables/name/a%00b",
            "/api/accounts/{account}/workspaces/{workspace}/work_pools/p%00/get_scheduled_flow_runs",
        ],
    )
    def test_a_nul_in_a_path_names_nothing(self, tenant, api_client, path):
        dev = bearer(api_client, tenant.service_key)
        path = path.format(account=tenant.account.id, workspace=tenant.workspace.id)
        response = dev.post(path, {}, format="json")
        assert response.status_code == 404, response.content
        assert response.json() == {"detail": "Not Found"}

    def test_a_nul_in_a_query_is_a_json_400(self, tenant, api_client):
        dev = bearer(api_client, tenant.service_key)
        response = dev.get(f"{tenant.prefix}/admin/version?x=%00")
        assert response.status_code == 400 and "NUL" in response.json()["detail"]

    @pytest.mark.django_db(transaction=True)
    def test_a_nul_in_a_websocket_path_is_refused_without_a_500(self, tenant):
        from tests.orchestration.events.conftest import communicator, refused

        for path in (
            f"/api/accounts/%00/workspaces/{tenant.workspace.id}/events/in",
            f"/api/accounts/{tenant.account.id}/workspaces/a%00b/events/in",
        ):
            run(refused, communicator(path, authorization=f"bearer {tenant.service_key}"))

    @pytest.mark.parametrize("path", ["/api/health", "/api/audit/signing_key"])
    def test_other_methods_on_public_routes_are_a_json_405(self, path):
        from django.test import Client

        response = Client(enforce_csrf_checks=True).post(path)
        assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
        assert response.json()["detail"]

    def test_too_many_query_fields_is_a_json_400(self, tenant, api_client, settings):
        settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
        dev = bearer(api_client, tenant.member_key)
        query = "&".join(f"f{i}=1" for i in range(50))
        response = dev.get(f"{tenant.prefix}/access/explain?{query}")
        assert response.status_code == 400, response.content
        assert response["Content-Type"].startswith("application/json") and response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("resource", "params"),
    [
        ("Users", {"filter": 'id eq "not-a-uuid"'}),
        ("Groups", {"filter": 'id eq "not-a-uuid"'}),
        ("Groups", {"filter": 'members.value eq "x"'}),
        ("Users", {"filter": 'id ne "not-a-uuid"'}),
        ("Users", {"startIndex": str(10**20)}),
        ("Groups", {"startIndex": str(10**20), "count": "5"}),
    ],
)
def test_scim_lists_answer_odd_filters_and_pages_without_a_500(tenant, resource, params):
    from accounts.scim.services import scim_token_create
    from audit.actors import SYSTEM
    from tests.accounts.test_scim import Scim

    scim = Scim(tenant.account, scim_token_create(account=tenant.account, actor=SYSTEM, name="okta")[1])
    response = scim.get(resource, **params)
    assert response.status_code == 200, response.content
    body = response.json()
    if params.get("filter", "").startswith("id ne"):
        assert body["totalResults"] == scim.get(resource).json()["totalResults"]
    else:
        assert body["totalResults"] == 0 or "startIndex" in params


@pytest.mark.django_db
def test_scim_refuses_an_order_on_ids_it_cannot_read(tenant):
    from accounts.scim.services import scim_token_create
    from audit.actors import SYSTEM
    from tests.accounts.test_scim import Scim

    scim = Scim(tenant.account, scim_token_create(account=tenant.account, actor=SYSTEM, name="okta")[1])
    response = scim.get("Users", filter='id gt "x"')
    assert response.status_code == 400 and response.json()["scimType"] == "invalidFilter"


@pytest.mark.django_db(transaction=True)
def test_a_socket_that_never_authenticates_is_closed(tenant, monkeypatch):
    from orchestration.events import consumers
    from tests.orchestration.events.conftest import communicator

    monkeypatch.setattr(consumers._PrefectSocket, "AUTH_TIMEOUT", 0.2)

    async def scenario():
        ws = communicator(events_path(tenant, "out"), subprotocols=["prefect"])
        connected, subprotocol = await ws.connect()
        assert connected and subprotocol == "prefect"
        output = await ws.receive_output(timeout=3)  # no auth message is ever sent
        assert output["type"] == "websocket.close" and output.get("code") == 1008
        await ws.disconnect()

    run(scenario)


@pytest.mark.django_db
def test_an_events_filter_with_thousands_of_terms_is_a_422_and_the_most_allowed_still_answers(
    tenant, api_client
):
    from orchestration.events.schemas import MAX_TERMS

    dev = bearer(api_client, tenant.service_key)
    many = {"filter": {"event": {"prefix": [f"p{i}." for i in range(5_000)]}}}
    assert dev.post(f"{tenant.prefix}/events/filter", many, format="json").status_code == 422
    most = {"filter": {"resource": {"id_prefix": [f"r{i}." for i in range(MAX_TERMS)]}}}
    assert dev.post(f"{tenant.prefix}/events/filter", most, format="json").status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "message",
    [
        json.dumps({"type": "filter", "filter": {"event": {"prefix": [f"p{i}." for i in range(5_000)]}}}),
        '{"type": "filter", "filter": {"event": {"prefix": ' + "[" * 5_000 + "]" * 5_000 + "}}}",
    ],
    ids=["5000 prefixes", "nested 5000 deep"],
)
def test_a_subscriber_with_an_unusable_filter_is_closed_with_a_reason(tenant, message):
    from tests.orchestration.events.conftest import open_prefect

    async def scenario():
        ws = await open_prefect(events_path(tenant, "out"), tenant.service_key)
        await ws.send_to(text_data=message)
        output = await ws.receive_output(timeout=3)
        assert output["type"] == "websocket.close" and output.get("code") == 1002, output
        await ws.disconnect()

    run(scenario)


@pytest.mark.django_db
def test_a_session_write_without_its_csrf_token_is_a_json_403(tenant):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(tenant.member)
    response = browser.post(f"{tenant.prefix}/flows/", {"name": "f"}, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
