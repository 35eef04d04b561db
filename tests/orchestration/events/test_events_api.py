"""HTTP: ``POST …/events/filter`` (+ ``/filter/next`` pagination), ``/events/count-by/{countable}``,
``POST …/events``; and the filter grammar, in SQL and in Python, on the same events."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import urlsplit

import pytest

from accounts.api_keys.services import api_key_create
from accounts.permissions import WorkspaceRole
from audit.actors import SYSTEM
from orchestration.events.filters import matches
from orchestration.events.schemas import EventFilter
from orchestration.events.services import events_ingest
from orchestration.models import Event
from tests.conftest import bearer
from tests.factories import GrantFactory, ServiceAccountFactory
from tests.orchestration.events.conftest import captured, make_event, now_iso

pytestmark = pytest.mark.django_db


def _ago(**kwargs) -> str:
    return now_iso(-dt.timedelta(**kwargs))


def _filter(client, tenant, body):
    response = client.post(f"{tenant.prefix}/events/filter", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _all_pages(client, tenant, body) -> tuple[list[dict], list[dict]]:
    pages = [_filter(client, tenant, body)]
    while pages[-1]["next_page"]:
        url = urlsplit(pages[-1]["next_page"])
        response = client.get(f"{url.path}?{url.query}")
        assert response.status_code == 200, response.content
        pages.append(response.json())
    return pages, [event for page in pages for event in page["events"]]


def _seven_events(tenant) -> list[dict]:
    events = [
        make_event("test.page", occurred=_ago(minutes=10 - i), resource_id=f"test.thing.{i % 3}")
        for i in range(7)
    ]
    events_ingest(workspace_id=tenant.workspace.pk, events=events)
    return events


# --- /events/filter ---------------------------------------------------------------------------------


def test_filter_pages_through_every_match_newest_first(api_client, tenant):
    events = _seven_events(tenant)
    client = bearer(api_client, tenant.service_key)
    pages, got = _all_pages(client, tenant, {"filter": {"event": {"name": ["test.page"]}}, "limit": 3})
    assert [len(p["events"]) for p in pages] == [3, 3, 1]
    assert all(p["total"] == 7 for p in pages)
    assert [e["id"] for e in got] == [e["id"] for e in reversed(events)]
    assert pages[-1]["next_page"] is None
    first = urlsplit(pages[0]["next_page"])
    assert first.scheme == "http" and first.path == f"{tenant.prefix}/events/filter/next"
    assert first.query.startswith("page-token=")
    event = got[0]
    assert set(event) == {"id", "occurred", "event", "resource", "related", "payload", "received", "follows"}


def test_filter_ascending_and_a_prefect_client_body(api_client, tenant):
    events = _seven_events(tenant)
    client = bearer(api_client, tenant.member_key)
    body = {
        "filter": {
            "occurred": {"since": _ago(hours=1), "until": now_iso()},
            "event": {"prefix": ["test."], "exclude_prefix": None, "name": None, "exclude_name": None},
            "resource": None,
            "related": None,
            "any_resource": None,
            "id": {"id": []},
            "text": None,
            "order": "ASC",
        },
        "limit": 100,
    }
    page = _filter(client, tenant, body)
    assert page["total"] == 7 and page["next_page"] is None
    assert [e["id"] for e in page["events"]] == [e["id"] for e in events]


def test_filter_with_no_body_uses_the_defaults(api_client, tenant):
    _seven_events(tenant)
    page = _filter(bearer(api_client, tenant.service_key), tenant, None)
    assert page["total"] == 7 and len(page["events"]) == 7


def test_filter_limit_bounds(api_client, tenant):
    _seven_events(tenant)
    client = bearer(api_client, tenant.service_key)
    assert len(_filter(client, tenant, {"limit": 0})["events"]) == 0
    assert client.post(f"{tenant.prefix}/events/filter", {"limit": -1}, format="json").status_code == 422
    assert (
        client.post(f"{tenant.prefix}/events/filter", {"filter": {"order": "UP"}}, format="json").status_code
        == 422
    )


def test_a_bad_page_token_is_forbidden(api_client, tenant):
    client = bearer(api_client, tenant.service_key)
    for token in ("", "bm90IGpzb24=", "%%%"):
        assert client.get(f"{tenant.prefix}/events/filter/next?page-token={token}").status_code == 403


def test_a_page_token_only_reads_the_workspace_of_the_url(api_client, two_workspaces):
    a, b = two_workspaces
    _seven_events(a)
    _seven_events(b)
    client_a = bearer(api_client, a.service_key)
    next_page = _filter(client_a, a, {"limit": 2})["next_page"]
    url = urlsplit(next_page)
    # B's key on A's link: not found; A's key with the token on B's path: not found either.
    assert bearer(api_client, b.service_key).get(f"{url.path}?{url.query}").status_code == 404
    assert (
        bearer(api_client, a.service_key).get(f"{b.prefix}/events/filter/next?{url.query}").status_code == 404
    )


def test_reading_events_needs_see_events_and_a_key(api_client, tenant):
    robot = ServiceAccountFactory(account=tenant.account)
    GrantFactory(workspace=tenant.workspace, service_account=robot, role=WorkspaceRole.VIEWER)
    viewer_key = api_key_create(owner=robot, name="viewer", actor=SYSTEM)[1]
    _seven_events(tenant)
    assert _filter(bearer(api_client, viewer_key), tenant, {})["total"] == 7
    api_client.credentials()
    assert api_client.post(f"{tenant.prefix}/events/filter", {}, format="json").status_code == 401


# --- The filter grammar: SQL and Python agree -------------------------------------------------------

FLOW_RUN = "prefect.flow-run.5b7ab16d-3342-4dcd-bcb6-89397780f7b4"


def _grammar_events() -> list[dict]:
    events = captured("task_retry")
    for i, event in enumerate(events):
        event["occurred"] = _ago(minutes=30 - i)
    events.append(
        make_event(
            "prefect.flow-run.Cancelling",
            occurred=_ago(minutes=5),
            resource_id="prefect.flow-run.5b7ab16d-3342-4dcd-bcb6-89397780f7b4",
            related=[
                {"prefect.resource.id": "prefect.deployment.d1", "prefect.resource.role": "deployment"},
                {"prefect.resource.id": "prefect.tag.nightly", "prefect.resource.role": "tag"},
            ],
            payload={"note": "Connection Timeout happened"},
        )
    )
    events[-1]["resource"].update(
        {"prefect.resource.name": "Marvellous-Coot", "prefect.state-type": "CANCELLING"}
    )
    events.append(make_event("custom.thing_done", occurred=_ago(minutes=2), resource_id="custom.%weird_id"))
    events.append(make_event("old.event", occurred=_ago(days=2), resource_id="custom.old"))
    return events


GRAMMAR_CASES = {
    "everything": {},
    "name": {"event": {"name": ["prefect.task-run.Running", "prefect.task-run.Retrying"]}},
    "prefix": {"event": {"prefix": ["prefect.task-run.", "custom."]}},
    "exclude prefix and name": {
        "event": {"exclude_prefix": ["prefect.task-run."], "exclude_name": ["custom.thing_done"]}
    },
    "occurred window": {"occurred": {"since": _ago(minutes=28), "until": _ago(minutes=3)}},
    "old window": {"occurred": {"since": _ago(days=3), "until": _ago(days=1)}},
    "resource id": {"resource": {"id": [FLOW_RUN]}},
    "resource id prefix": {"resource": {"id_prefix": ["prefect.task-run."]}},
    "resource label glob": {"resource": {"labels": {"prefect.resource.name": "flaky-*"}}},
    "resource label ? and list": {"resource": {"labels": {"prefect.state-name": ["Runnin?", "Completed"]}}},
    "resource label negated": {"resource": {"labels": {"prefect.state-type": "!RUNNING"}}},
    "resource label case sensitive": {"resource": {"labels": {"prefect.resource.name": "marvellous-*"}}},
    "resource label empty list": {"resource": {"labels": {"prefect.resource.name": []}}},
    "resource label absent": {"resource": {"labels": {"no.such.label": "*"}}},
    "resource id label with wildcard chars": {
        "resource": {"labels": {"prefect.resource.id": "custom.%weird_*"}}
    },
    "resource labels by id": {"resource": {"labels": {"prefect.resource.id": ["prefect.flow-run.*"]}}},
    "related id": {"related": {"id": [FLOW_RUN]}},
    "related role": {"related": {"role": ["deployment"]}},
    "related id in role": {"related": {"resources_in_roles": [[FLOW_RUN, "flow-run"]]}},
    "related id in wrong role": {"related": {"resources_in_roles": [[FLOW_RUN, "flow"]]}},
    "related labels": {
        "related": {"labels": {"prefect.resource.role": "flow", "prefect.resource.name": "retry*"}}
    },
    "related list": {"related": [{"role": ["deployment"]}, {"id": ["prefect.tag.nightly"]}]},
    "related empty": {"related": {}},
    "any resource id": {"any_resource": {"id": [FLOW_RUN]}},
    "any resource prefix": {"any_resource": {"id_prefix": ["prefect.tag."]}},
    "any resource role label": {"any_resource": {"labels": {"prefect.resource.role": ["deployment"]}}},
    "any resource label glob": {"any_resource": {"labels": {"prefect.resource.name": "Marv*"}}},
    "any resource list": {
        "any_resource": [{"id_prefix": ["prefect.flow"]}, {"id_prefix": ["prefect.task-run"]}]
    },
    # Ids with labels: the labels must hold for the resource the id names (the side table narrows,
    # the JSON decides).
    "any resource id with labels": {
        "any_resource": {"id": [FLOW_RUN], "labels": {"prefect.resource.role": ["flow-run"]}}
    },
    "any resource id with primary labels": {
        "any_resource": {"id": [FLOW_RUN], "labels": {"prefect.resource.name": "Marv*"}}
    },
    "any resource id and prefix": {
        "any_resource": {"id": [FLOW_RUN, "prefect.tag.nightly"], "id_prefix": ["prefect.tag."]}
    },
    "any resource unknown id": {"any_resource": {"id": ["prefect.flow.nope"]}},
    "related id with labels": {"related": {"id": [FLOW_RUN], "labels": {"prefect.resource.name": "no-*"}}},
    "related id and role": {"related": {"id": [FLOW_RUN, "prefect.deployment.d1"], "role": ["deployment"]}},
    "related role of the primary": {"related": {"role": [""]}},
    "related primary id": {"related": {"id": ["custom.%weird_id"]}},
    "ids": {"id": {"id": []}},
    "text": {"text": {"query": "timeout"}},
    "text phrase and exclusion": {"text": {"query": '"connection timeout" -nothing'}},
    "text exclusion only": {"text": {"query": "-flaky"}},
    "combined": {
        "event": {"prefix": ["prefect."]},
        "related": {"role": ["flow-run"]},
        "resource": {"labels": {"prefect.state-type": ["RUNNING", "COMPLETED"]}},
    },
}


@pytest.mark.parametrize("case", GRAMMAR_CASES, ids=list(GRAMMAR_CASES))
def test_the_filter_grammar_in_sql_matches_the_python_predicate(api_client, tenant, case):
    events = _grammar_events()
    events_ingest(workspace_id=tenant.workspace.pk, events=events)
    criteria = {"occurred": {"since": _ago(days=7), "until": now_iso()}, **GRAMMAR_CASES[case]}
    if case == "ids":
        criteria["id"] = {"id": [events[0]["id"], events[-1]["id"], str(uuid.uuid4())]}

    page = _filter(bearer(api_client, tenant.service_key), tenant, {"filter": criteria, "limit": 200})
    from_sql = {e["id"] for e in page["events"]}

    flt = EventFilter.model_validate(criteria)
    rows = Event.objects.for_workspace(tenant.workspace.pk)
    in_python = {
        str(row.id)
        for row in rows
        if matches(
            flt,
            {
                "id": row.id,
                "event": row.event,
                "occurred": row.occurred,
                "resource": row.resource,
                "related": row.related,
                "payload": row.payload,
            },
        )
    }
    assert from_sql == in_python
    assert page["total"] == len(from_sql)


def test_some_grammar_cases_select_what_they_should(api_client, tenant):
    events = _grammar_events()
    events_ingest(workspace_id=tenant.workspace.pk, events=events)
    client = bearer(api_client, tenant.service_key)
    by_name = {e["id"]: e["event"] for e in events}

    def names(criteria):
        body = {"filter": {"occurred": {"since": _ago(days=7), "until": now_iso()}, **criteria}, "limit": 200}
        return sorted(by_name[e["id"]] for e in _filter(client, tenant, body)["events"])

    task_run_events = [
        "prefect.task-run.Completed",
        "prefect.task-run.Pending",
        "prefect.task-run.Retrying",
        "prefect.task-run.Running",
    ]
    assert names(GRAMMAR_CASES["related id in role"]) == task_run_events
    assert names(GRAMMAR_CASES["related id in wrong role"]) == []
    assert names(GRAMMAR_CASES["resource label negated"]) == [
        "prefect.flow-run.Cancelling",
        "prefect.task-run.Completed",
        "prefect.task-run.Pending",
    ]
    assert names(GRAMMAR_CASES["resource label case sensitive"]) == []
    assert names(GRAMMAR_CASES["resource id label with wildcard chars"]) == ["custom.thing_done"]
    assert names(GRAMMAR_CASES["any resource role label"]) == ["prefect.flow-run.Cancelling"]
    assert names(GRAMMAR_CASES["text"]) == ["prefect.flow-run.Cancelling"]
    assert names({"resource": {"id": [FLOW_RUN], "distinct": True}}) == ["prefect.flow-run.Cancelling"]
    # The newest event of each resource (the heartbeat and the Cancelling share the flow run).
    distinct = names({"resource": {"id_prefix": ["prefect."], "distinct": True}})
    assert distinct == ["prefect.flow-run.Cancelling", "prefect.task-run.Completed"]


# --- /events/count-by -------------------------------------------------------------------------------


def test_count_by_event_and_resource(api_client, tenant):
    _seven_events(tenant)
    events_ingest(
        workspace_id=tenant.workspace.pk, events=[make_event("test.other", occurred=_ago(minutes=1))]
    )
    client = bearer(api_client, tenant.service_key)
    window = {"occurred": {"since": _ago(hours=1), "until": now_iso()}}
    response = client.post(f"{tenant.prefix}/events/count-by/event", {"filter": window}, format="json")
    assert response.status_code == 200, response.content
    assert [(c["value"], c["count"]) for c in response.json()] == [("test.page", 7), ("test.other", 1)]
    response = client.post(
        f"{tenant.prefix}/events/count-by/resource",
        {"filter": {**window, "event": {"name": ["test.page"]}}},
        format="json",
    )
    assert sorted((c["value"], c["count"]) for c in response.json()) == [
        ("test.thing.0", 3),
        ("test.thing.1", 2),
        ("test.thing.2", 2),
    ]
    assert set(response.json()[0]) == {"value", "label", "count", "start_time", "end_time"}


def test_count_by_time_buckets_the_window(api_client, tenant):
    events_ingest(
        workspace_id=tenant.workspace.pk,
        events=[make_event("test.t", occurred=_ago(hours=h, minutes=1)) for h in (0, 0, 2, 5)],
    )
    client = bearer(api_client, tenant.service_key)
    body = {
        "filter": {"occurred": {"since": _ago(hours=6), "until": now_iso()}},
        "time_unit": "hour",
        "time_interval": 1,
    }
    response = client.post(f"{tenant.prefix}/events/count-by/time", body, format="json")
    assert response.status_code == 200, response.content
    counts = response.json()
    assert 6 <= len(counts) <= 8
    assert [c["value"] for c in counts] == [str(i) for i in range(len(counts))]
    assert sum(c["count"] for c in counts) == 4
    assert counts[-1]["count"] + counts[-2]["count"] >= 2
    day = client.post(f"{tenant.prefix}/events/count-by/day", {"filter": body["filter"]}, format="json")
    assert day.status_code == 200 and sum(c["count"] for c in day.json()) == 4
    too_many = {**body, "time_unit": "second"}
    assert client.post(f"{tenant.prefix}/events/count-by/time", too_many, format="json").status_code == 422
    assert client.post(f"{tenant.prefix}/events/count-by/nonsense", body, format="json").status_code == 422


@pytest.mark.parametrize(("unit", "interval"), [("day", 1.99e307), ("week", 1e12), ("second", 1e300)])
def test_count_by_time_refuses_an_interval_longer_than_dates_reach(api_client, tenant, unit, interval):
    """An interval no date arithmetic can hold is a 422, not an overflow (found by the schemathesis
    run: ``time_interval`` 1.99e307 days)."""
    client = bearer(api_client, tenant.service_key)
    body = {"filter": {"occurred": {"since": _ago(hours=6), "until": now_iso()}}, "time_unit": unit}
    response = client.post(
        f"{tenant.prefix}/events/count-by/time", {**body, "time_interval": interval}, format="json"
    )
    assert response.status_code == 422, response.content
    assert "interval" in response.json()["detail"]


# --- POST /events -----------------------------------------------------------------------------------


def test_post_events_stores_them_once(api_client, tenant):
    client = bearer(api_client, tenant.service_key)
    events = captured("task_retry")
    for _ in range(2):
        response = client.post(f"{tenant.prefix}/events", events, format="json")
        assert response.status_code == 204, response.content
    assert Event.objects.for_workspace(tenant.workspace.pk).count() == len(events)
    bad = client.post(f"{tenant.prefix}/events", [{"event": "no id"}], format="json")
    assert bad.status_code == 422


def test_post_events_refuses_a_time_out_of_range_once_in_utc(api_client, tenant):
    """0001-01-01T00:00+01:00 is a valid time that no UTC column can hold: a 422, not a 500."""
    client = bearer(api_client, tenant.service_key)
    event = make_event()
    event["occurred"] = "0001-01-01T00:00:00+01:00"
    response = client.post(f"{tenant.prefix}/events", [event], format="json")
    assert response.status_code == 422, response.content
    assert "out of range" in response.content.decode()
    assert Event.objects.unscoped().count() == 0


def test_post_events_needs_manage_events(api_client, tenant):
    robot = ServiceAccountFactory(account=tenant.account)
    GrantFactory(workspace=tenant.workspace, service_account=robot, role=WorkspaceRole.VIEWER)
    viewer_key = api_key_create(owner=robot, name="viewer", actor=SYSTEM)[1]
    response = bearer(api_client, viewer_key).post(f"{tenant.prefix}/events", [make_event()], format="json")
    assert response.status_code == 403
    assert Event.objects.unscoped().count() == 0
