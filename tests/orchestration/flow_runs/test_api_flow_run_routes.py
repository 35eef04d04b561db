"""The flow-run routes beyond create/read/set_state: delete and what goes with a run, bulk delete
and bulk set_state, flow_run_states, paginate, history, lateness, the graphs and the log download,
each as Prefect's server answers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orchestration.models import Artifact, FlowRun, FlowRunInput, FlowRunState, Log, TaskRun, TaskRunState
from tests.orchestration.flow_runs.conftest import Api, make_task_run

pytestmark = pytest.mark.django_db


def _ws(model, tenant):
    return model.objects.for_workspace(tenant.workspace.id)


def _log(tenant, run_id, message, *, seconds: int = 0, task_run_id=None, level=20):
    return Log.objects.for_workspace(tenant.workspace.id).create(
        workspace=tenant.workspace, name="prefect.flow_runs", level=level, message=message,
        timestamp=timezone.now().replace(microsecond=0) + dt.timedelta(seconds=seconds),
        flow_run_id=run_id, task_run_id=task_run_id,
    )  # fmt: skip


class TestDelete:
    def test_deleting_a_run_removes_what_belongs_to_it(self, api, tenant):
        run_id = api.run()["id"]
        keep_id = api.run()["id"]
        task = make_task_run(tenant.workspace, run_id, name="t")
        subflow = api.run(parent_task_run_id=str(task.id))["id"]
        api.post(f"flow_runs/{run_id}/input", {"key": "k", "value": "v"})
        _log(tenant, run_id, "mine")
        _log(tenant, keep_id, "theirs")
        assert api.delete(f"flow_runs/{run_id}").status_code == 204
        assert not _ws(FlowRun, tenant).filter(id=run_id).exists()
        assert not _ws(FlowRunState, tenant).filter(flow_run_id=run_id).exists()
        assert not _ws(FlowRunInput, tenant).exists()
        assert not _ws(TaskRun, tenant).exists() and not _ws(TaskRunState, tenant).exists()
        assert list(_ws(Log, tenant).values_list("message", flat=True)) == ["theirs"]
        assert _ws(FlowRun, tenant).get(id=subflow).parent_task_run_id is None
        assert api.delete(f"flow_runs/{run_id}").status_code == 404

    def test_bulk_delete_by_filter_up_to_the_limit(self, api, tenant):
        flow_id = api.flow()
        tagged = [api.run(flow_id, tags=["old"])["id"] for _ in range(3)]
        kept = api.run(flow_id, tags=["new"])["id"]
        _log(tenant, tagged[0], "gone")
        response = api.post("flow_runs/bulk_delete", {"flow_runs": {"tags": {"all_": ["old"]}}, "limit": 2})
        assert response.status_code == 200
        deleted = response.json()["deleted"]
        assert len(deleted) == 2 and set(deleted) <= set(tagged)
        rest = api.post("flow_runs/bulk_delete", {"flow_runs": {"tags": {"all_": ["old"]}}}).json()["deleted"]
        assert set(deleted) | set(rest) == set(tagged)
        assert list(_ws(FlowRun, tenant).values_list("id", flat=True)) == [uuid.UUID(kept)]
        assert not _ws(Log, tenant).exists()
        assert api.post("flow_runs/bulk_delete", {"flow_runs": {"tags": {"all_": ["old"]}}}).json() == {
            "deleted": []
        }

    @pytest.mark.parametrize(
        "body", [{"limit": 0}, {"limit": 51}, {"limit": "x"}, {"flow_runs": {"nope": {}}}]
    )
    def test_bulk_delete_bad_bodies_delete_nothing(self, api, tenant, body):
        api.run()
        assert api.post("flow_runs/bulk_delete", body).status_code == 422
        assert _ws(FlowRun, tenant).count() == 1

    def test_bulk_delete_needs_manage_flows_and_stays_in_its_workspace(self, api, tenant, as_role, other):
        run_id = api.run()["id"]
        for role in ("viewer", "runner", "worker"):
            assert Api(as_role(role), tenant.prefix).post("flow_runs/bulk_delete", {}).status_code == 403
        client, b = other
        assert Api(client, b.prefix).post("flow_runs/bulk_delete", {}).json() == {"deleted": []}
        assert Api(client, tenant.prefix).post("flow_runs/bulk_delete", {}).status_code == 404
        assert _ws(FlowRun, tenant).filter(id=run_id).exists()


class TestBulkSetState:
    def test_each_run_goes_through_orchestration_with_its_own_result(self, api, tenant):
        flow_id = api.flow()
        pending = api.run(flow_id, tags=["b"])["id"]
        running = api.run(flow_id, tags=["b"])["id"]
        api.set_state(running, "RUNNING")
        body = {"flow_runs": {"tags": {"all_": ["b"]}}, "state": {"type": "PAUSED", "name": "Paused"}}
        response = api.post("flow_runs/bulk_set_state", body)
        assert response.status_code == 200
        results = {r["flow_run_id"]: r for r in response.json()["results"]}
        assert set(results) == {pending, running}
        # Only a running run can be paused (HandlePausingFlows); the other is refused on its own.
        assert results[pending]["status"] == "REJECT" and results[pending]["state"]["type"] == "PENDING"
        assert results[pending]["details"] == {
            "type": "reject_details",
            "reason": "Cannot pause flows that are not currently running.",
        }
        assert results[running]["status"] == "ACCEPT" and results[running]["state"]["type"] == "PAUSED"
        assert _ws(FlowRun, tenant).get(id=running).state_type == "PAUSED"
        assert _ws(FlowRun, tenant).get(id=pending).state_type == "PENDING"

    def test_force_uses_the_minimal_policy(self, api, tenant):
        run_id = api.run(tags=["f"])["id"]
        body = {"flow_runs": {"id": {"any_": [run_id]}}, "state": {"type": "CANCELLED"}, "force": True}
        result = api.post("flow_runs/bulk_set_state", body).json()["results"]
        assert [(r["status"], r["state"]["type"]) for r in result] == [("ACCEPT", "CANCELLED")]

    @pytest.mark.parametrize(
        "body", [{}, {"state": {"type": "NOPE"}}, {"state": {"type": "RUNNING"}, "limit": 0}]
    )
    def test_bad_bodies(self, api, tenant, body):
        run_id = api.run()["id"]
        assert api.post("flow_runs/bulk_set_state", body).status_code == 422
        assert _ws(FlowRun, tenant).get(id=run_id).state_type == "PENDING"

    def test_viewer_refused_and_other_workspace_untouched(self, api, tenant, as_role, other):
        run_id = api.run()["id"]
        body = {"state": {"type": "RUNNING"}}
        assert Api(as_role("viewer"), tenant.prefix).post("flow_runs/bulk_set_state", body).status_code == 403
        client, b = other
        assert Api(client, b.prefix).post("flow_runs/bulk_set_state", body).json() == {"results": []}
        assert _ws(FlowRun, tenant).get(id=run_id).state_type == "PENDING"


class TestFlowRunStates:
    def test_list_and_read(self, api, tenant, as_role):
        run_id = api.run()["id"]
        api.set_state(run_id, "RUNNING")
        api.set_state(run_id, "COMPLETED")
        viewer = Api(as_role("viewer"), tenant.prefix)
        states = viewer.get("flow_run_states/", flow_run_id=run_id).json()
        assert [s["type"] for s in states] == ["PENDING", "RUNNING", "COMPLETED"]
        assert states[0]["state_details"]["flow_run_id"] == run_id
        one = viewer.get(f"flow_run_states/{states[1]['id']}")
        assert (one.status_code, one.json()) == (200, states[1])
        assert api.get("flow_run_states/", flow_run_id=str(uuid.uuid4())).json() == []

    def test_errors(self, api):
        assert api.get("flow_run_states/").status_code == 422
        assert api.get("flow_run_states/", flow_run_id="nope").status_code == 422
        missing = api.get(f"flow_run_states/{uuid.uuid4()}")
        assert (missing.status_code, missing.json()) == (404, {"detail": "Flow run state not found"})

    def test_another_workspace_sees_nothing(self, api, other):
        run_id = api.run()["id"]
        state_id = api.get(f"flow_runs/{run_id}").json()["state_id"]
        client, b = other
        assert Api(client, b.prefix).get("flow_run_states/", flow_run_id=run_id).json() == []
        assert Api(client, b.prefix).get(f"flow_run_states/{state_id}").status_code == 404


class TestPaginateHistoryLateness:
    def test_paginate(self, api):
        flow_id = api.flow()
        ids = [api.run(flow_id)["id"] for _ in range(5)]
        page = api.post("flow_runs/paginate", {"limit": 2, "page": 2}).json()
        assert (page["count"], page["limit"], page["pages"], page["page"]) == (5, 2, 3, 2)
        assert [r["id"] for r in page["results"]] == sorted(ids, reverse=True)[2:4]
        assert api.post("flow_runs/paginate", {"limit": 0}).json()["pages"] == 0
        assert api.post("flow_runs/paginate", {"page": 0}).status_code == 422
        assert api.post("flow_runs/paginate", {"limit": 201}).status_code == 422

    def test_history_buckets_by_expected_start_and_state(self, api, tenant):
        flow_id = api.flow()
        start = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=10)
        done = api.run(flow_id)["id"]
        api.set_state(done, "RUNNING")
        api.set_state(done, "COMPLETED")
        api.run(flow_id)
        _ws(FlowRun, tenant).filter(id=done).update(expected_start_time=start + dt.timedelta(seconds=30))
        body = {"history_start": start.isoformat(), "history_end": (start + dt.timedelta(minutes=20)).isoformat(),
                "history_interval_seconds": 600}  # fmt: skip
        history = api.post("flow_runs/history", body).json()
        assert len(history) == 2
        assert history[0]["interval_start"] == start.isoformat().replace("+00:00", "Z")
        first = {(s["state_type"], s["state_name"]): s for s in history[0]["states"]}
        second = {(s["state_type"], s["state_name"]): s for s in history[1]["states"]}
        assert first[("COMPLETED", "Completed")]["count_runs"] == 1
        assert first[("COMPLETED", "Completed")]["sum_estimated_lateness"] > 0
        assert second[("PENDING", "Pending")]["count_runs"] == 1
        assert (
            api.post("flow_runs/history", {**body, "flows": {"name": {"any_": ["x"]}}}).json()[0]["states"]
            == []
        )
        short = api.post("flow_runs/history", {**body, "history_interval_seconds": 0.5})
        assert (short.status_code, short.json()["detail"]) == (
            422,
            "History interval must not be less than 1 second.",
        )
        assert api.post("flow_runs/history", {"history_start": "x"}).status_code == 422

    def test_lateness(self, api, tenant):
        assert api.post("flow_runs/lateness", {}).json() is None
        run_id = api.run()["id"]
        _ws(FlowRun, tenant).filter(id=run_id).update(
            expected_start_time=timezone.now() - dt.timedelta(seconds=100)
        )
        lateness = api.post("flow_runs/lateness", {}).json()
        assert 99 <= lateness < 200
        assert (
            api.post("flow_runs/lateness", {"flow_runs": {"id": {"any_": [str(uuid.uuid4())]}}}).json()
            is None
        )
        assert api.post("flow_runs/lateness", {"flow_runs": {"bogus": 1}}).status_code == 422

    def test_other_workspace_runs_are_not_counted(self, api, other):
        api.run()
        client, b = other
        theirs = Api(client, b.prefix)
        assert theirs.post("flow_runs/paginate", {}).json()["count"] == 0
        assert theirs.post("flow_runs/lateness", {}).json() is None


class TestGraphs:
    def _graph_run(self, api, tenant):
        run_id = api.run()["id"]
        api.set_state(run_id, "RUNNING")
        t0 = timezone.now().replace(microsecond=0)
        upstream = make_task_run(
            tenant.workspace, run_id, name="extract-0", start=t0, end=t0 + dt.timedelta(seconds=1)
        )
        downstream = make_task_run(
            tenant.workspace, run_id, name="load-0", start=t0 + dt.timedelta(seconds=2),
            task_inputs={"x": [{"input_type": "task_run", "id": str(upstream.id)}], "y": [{"input_type": "parameter", "name": "y"}]},
        )  # fmt: skip
        parent_task = make_task_run(tenant.workspace, run_id, name="child-flow-0", start=t0 + dt.timedelta(seconds=3),
                                    state_type="RUNNING",
                                    task_inputs={"__parents__": [{"input_type": "task_run", "id": str(upstream.id)}]})  # fmt: skip
        child = api.run(api.flow("child"), parent_task_run_id=str(parent_task.id))
        Artifact.objects.for_workspace(tenant.workspace.id).create(
            workspace=tenant.workspace, key="report", type="markdown", data="# hi", flow_run_id=run_id, task_run_id=upstream.id
        )  # fmt: skip
        Artifact.objects.for_workspace(tenant.workspace.id).create(
            workspace=tenant.workspace, type="progress", data=50, flow_run_id=run_id
        )
        Artifact.objects.for_workspace(tenant.workspace.id).create(
            workspace=tenant.workspace, type="result", flow_run_id=run_id
        )
        return run_id, upstream, downstream, child

    def test_graph_v1_lists_task_runs_with_their_upstream(self, api, tenant):
        run_id, upstream, downstream, _ = self._graph_run(api, tenant)
        graph = {item["id"]: item for item in api.get(f"flow_runs/{run_id}/graph").json()}
        assert len(graph) == 3
        item = graph[str(downstream.id)]
        assert {"input_type": "task_run", "id": str(upstream.id)} in item["upstream_dependencies"]
        assert item["state"]["type"] == "COMPLETED" and item["untrackable_result"] is False
        assert item["name"] == "load-0" and item["expected_start_time"]
        assert api.get(f"flow_runs/{uuid.uuid4()}/graph").status_code == 404

    def test_graph_v2_nodes_edges_artifacts_states(self, api, tenant):
        run_id, upstream, downstream, child = self._graph_run(api, tenant)
        response = api.get(f"flow_runs/{run_id}/graph-v2")
        assert response.status_code == 200
        graph = response.json()
        nodes = dict((node_id, node) for node_id, node in graph["nodes"])
        assert set(nodes) == {str(upstream.id), str(downstream.id), child["id"]}
        assert nodes[str(downstream.id)]["parents"] == [{"id": str(upstream.id)}]
        assert nodes[str(upstream.id)]["children"] == [{"id": str(downstream.id)}]
        sub = nodes[child["id"]]
        assert sub["kind"] == "flow-run" and sub["label"] == f"child / {child['name']}"
        assert sub["encapsulating"] == [{"id": str(upstream.id)}] and sub["parents"] == []
        assert set(graph["root_node_ids"]) == {str(upstream.id), child["id"]}
        assert [a["key"] for a in nodes[str(upstream.id)]["artifacts"]] == ["report"]
        assert nodes[str(upstream.id)]["artifacts"][0]["is_latest"] is True
        assert [(a["type"], a["data"]) for a in graph["artifacts"]] == [("progress", 50)]
        assert [s["type"] for s in graph["states"]] == ["PENDING", "RUNNING"]
        assert graph["start_time"] and graph["end_time"] is None
        # ``since`` leaves out nodes that ended before it (a completed task without an end ends
        # at its expected start); an unfinished node stays.
        later = (timezone.now() + dt.timedelta(hours=1)).isoformat()
        assert [n for n, _ in api.get(f"flow_runs/{run_id}/graph-v2", since=later).json()["nodes"]] == [
            child["id"]
        ]
        assert api.get(f"flow_runs/{run_id}/graph-v2", since="nope").status_code == 422
        assert api.get(f"flow_runs/{uuid.uuid4()}/graph-v2").status_code == 404

    def test_graphs_of_another_workspace_are_404(self, api, tenant, other):
        run_id = api.run()["id"]
        client, b = other
        for path in ("graph", "graph-v2", "logs/download"):
            assert Api(client, b.prefix).get(f"flow_runs/{run_id}/{path}").status_code == 404


class TestParentFlowRunFilter:
    """``flow_runs.parent_flow_run_id``: the subflows of given flow runs, as the client's
    ``FlowRunFilterParentFlowRunId`` asks (Prefect joins the parent task run to its flow run)."""

    def _tree(self, api, tenant):
        top = api.run(api.flow("top"))["id"]
        top_task = make_task_run(tenant.workspace, top, name="mid-0")
        mid = api.run(api.flow("mid"), parent_task_run_id=str(top_task.id))["id"]
        mid_task = make_task_run(tenant.workspace, mid, name="leaf-0")
        leaf = api.run(api.flow("leaf"), parent_task_run_id=str(mid_task.id))["id"]
        return top, mid, leaf

    def _ids(self, api, body) -> set[str]:
        response = api.post("flow_runs/filter", {"flow_runs": body})
        assert response.status_code == 200, response.content
        return {run["id"] for run in response.json()}

    def test_subflows_of_the_given_runs(self, api, tenant):
        top, mid, leaf = self._tree(api, tenant)
        assert self._ids(api, {"parent_flow_run_id": {"any_": [top]}}) == {mid}
        assert self._ids(api, {"parent_flow_run_id": {"any_": [top, mid], "operator": "and_"}}) == {mid, leaf}
        assert self._ids(api, {"parent_flow_run_id": {"any_": [leaf]}}) == set()
        assert self._ids(api, {"parent_flow_run_id": {"any_": None}}) == {top, mid, leaf}
        count = api.post("flow_runs/count", {"flow_runs": {"parent_flow_run_id": {"any_": [mid]}}})
        assert count.json() == 1

    @pytest.mark.parametrize("value", [{"any_": "x"}, {"any_": ["not-a-uuid"]}, {"eq_": 1}, []])
    def test_bad_values_are_422(self, api, value):
        response = api.post("flow_runs/filter", {"flow_runs": {"parent_flow_run_id": value}})
        assert response.status_code == 422, response.content

    def test_another_workspace_finds_no_subflows(self, api, tenant, other):
        top, _, _ = self._tree(api, tenant)
        client, b = other
        response = Api(client, b.prefix).post(
            "flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [top]}}}
        )
        assert response.status_code == 200 and response.json() == []


class TestCreatedByFilter:
    """``flow_runs.created_by`` (Prefect's ``FlowRunFilterCreatedBy``, in the example of Prefect's
    own OpenAPI document): by the creator's id and type, or whether there is one."""

    def test_by_id_type_and_presence(self, api, tenant):
        deployment_id, automation_id = uuid.uuid4(), uuid.uuid4()
        by_deployment, by_automation, by_nobody = (api.run()["id"] for _ in range(3))
        for run_id, creator in (
            (by_deployment, {"id": str(deployment_id), "type": "DEPLOYMENT", "display_value": "d"}),
            (by_automation, {"id": str(automation_id), "type": "AUTOMATION", "display_value": "a"}),
            (by_nobody, None),  # a run the key created names the key's owner; this one names nobody
        ):
            _ws(FlowRun, tenant).filter(id=run_id).update(created_by=creator)

        def ids(created_by) -> set[str]:
            response = api.post("flow_runs/filter", {"flow_runs": {"created_by": created_by}})
            assert response.status_code == 200, response.content
            return {run["id"] for run in response.json()}

        assert ids({"id_": [str(deployment_id)]}) == {by_deployment}
        assert ids({"type_": ["DEPLOYMENT", "AUTOMATION"]}) == {by_deployment, by_automation}
        assert ids({"type_": ["AUTOMATION"], "id_": [str(deployment_id)]}) == set()
        assert ids({"type_": ["AUTOMATION"], "id_": [str(deployment_id)], "operator": "or_"}) == {
            by_deployment, by_automation,
        }  # fmt: skip
        assert ids({"is_null_": True}) == {by_nobody}
        assert ids({"is_null_": False}) == {by_deployment, by_automation}
        assert (
            api.post("flow_runs/count", {"flow_runs": {"created_by": {"type_": ["DEPLOYMENT"]}}}).json() == 1
        )

    @pytest.mark.parametrize(
        "value", [{"id_": ["nope"]}, {"type_": "DEPLOYMENT"}, {"is_null_": "yes"}, {"eq_": 1}, []]
    )
    def test_bad_values_are_422(self, api, value):
        response = api.post("flow_runs/filter", {"flow_runs": {"created_by": value}})
        assert response.status_code == 422, response.content


class TestLogsDownload:
    def test_csv_of_the_runs_logs_oldest_first(self, api, tenant, as_role):
        run = api.run(name="nightly etl")
        task_id = uuid.uuid4()
        second = _log(tenant, run["id"], 'second, with "quotes"', seconds=2, task_run_id=task_id)
        first = _log(tenant, run["id"], "first", seconds=1, level=40)
        _log(tenant, api.run()["id"], "someone else's")
        response = Api(as_role("viewer"), tenant.prefix).get(f"flow_runs/{run['id']}/logs/download")
        assert response.status_code == 200
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"] == (
            "attachment; filename=\"flow-run-logs.csv\"; filename*=UTF-8''nightly%20etl-logs.csv"
        )
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert rows[0] == ["timestamp", "level", "flow_run_id", "task_run_id", "message"]
        assert rows[1:] == [
            [str(first.timestamp), "40", run["id"], "", "first"],
            [str(second.timestamp), "20", run["id"], str(task_id), 'second, with "quotes"'],
        ]
        assert api.get(f"flow_runs/{uuid.uuid4()}/logs/download").status_code == 404

    def test_streamed_a_page_at_a_time_after_the_view_returns(self, api, tenant, monkeypatch):
        monkeypatch.setattr("orchestration.selectors.flow_runs.LOGS_DOWNLOAD_PAGE", 3)
        run = api.run()
        # Seven logs, four sharing a timestamp: the pages continue after (timestamp, id).
        logs = [_log(tenant, run["id"], f"m{i}", seconds=0 if i < 4 else i) for i in range(7)]
        expected = sorted(logs, key=lambda log: (log.timestamp, log.id))
        with CaptureQueriesContext(connection) as queries:
            response = api.get(f"flow_runs/{run['id']}/logs/download")
            assert response.status_code == 200 and response.streaming
            assert not [q for q in queries.captured_queries if "orchestration_log" in q["sql"]]
            chunks = [chunk.decode() for chunk in response.streaming_content]
        reads = [q["sql"] for q in queries.captured_queries if "orchestration_log" in q["sql"]]
        assert len(reads) == 3 and all("LIMIT 3" in sql for sql in reads)
        assert all("OFFSET" not in sql for sql in reads)
        assert len(chunks) == 3
        rows = list(csv.reader(io.StringIO("".join(chunks))))
        assert [row[4] for row in rows[1:]] == [log.message for log in expected]

    def test_logs_filter_takes_the_operator_the_cli_sends(self, api, tenant):
        run_id = api.run()["id"]
        _log(tenant, run_id, "hello")
        body = {"logs": {"operator": "and_", "flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"}
        response = api.post("logs/filter", body)
        assert response.status_code == 200 and [r["message"] for r in response.json()] == ["hello"]


class TestQueryCounts:
    def test_list_routes_do_not_grow_with_rows(self, api, tenant, django_assert_max_num_queries):
        flow_id = api.flow()
        runs = [api.run(flow_id)["id"] for _ in range(6)]
        for key in range(6):
            api.post(f"flow_runs/{runs[0]}/input", {"key": f"k-{key}", "value": "1"})
        for path, body in (
            ("flow_runs/paginate", {}),
            (f"flow_runs/{runs[0]}/input/filter", {"prefix": "k", "limit": 10}),
        ):
            with django_assert_max_num_queries(12):
                assert api.post(path, body).status_code == 200
        with django_assert_max_num_queries(12):
            assert len(api.get("flow_run_states/", flow_run_id=runs[0]).json()) == 1
