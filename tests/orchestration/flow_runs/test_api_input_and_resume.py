"""Flow-run input (``flow_runs/{id}/input``) and resuming paused runs (``flow_runs/{id}/resume``),
with the pause rules they rely on, as Prefect's server answers them."""

from __future__ import annotations

import json
import uuid

import pytest

from orchestration.models import FlowRun, FlowRunInput, FlowRunState
from tests.orchestration.flow_runs.conftest import Api, keyset

pytestmark = pytest.mark.django_db

SCHEMA = {
    "title": "Approval",
    "type": "object",
    "properties": {"approved": {"title": "Approved", "type": "boolean"}, "note": {"type": "string"}},
    "required": ["approved"],
}


def _inputs(tenant, run_id) -> dict[str, str]:
    rows = FlowRunInput.objects.for_workspace(tenant.workspace.id).filter(flow_run_id=run_id)
    return {row.key: row.value for row in rows}


def _running(api: Api) -> str:
    run_id = api.run()["id"]
    assert api.set_state(run_id, "RUNNING").json()["status"] == "ACCEPT"
    return run_id


def _paused_waiting_for_input(api: Api, **pause) -> str:
    run_id = _running(api)
    assert api.pause(run_id, **pause).json()["status"] == "ACCEPT"
    schema_key = keyset(pause.get("key", "k1"))["schema"]
    assert (
        api.post(f"flow_runs/{run_id}/input", {"key": schema_key, "value": json.dumps(SCHEMA)}).status_code
        == 201
    )
    return run_id


class TestInput:
    def test_create_read_filter_delete(self, api, tenant):
        run_id = api.run()["id"]
        created = api.post(
            f"flow_runs/{run_id}/input", {"key": "greeting-1", "value": '"hi"', "sender": "me"}
        )
        assert (created.status_code, created.content) == (201, b"null")
        api.post(f"flow_runs/{run_id}/input", {"key": "greeting-2", "value": '"yo"'})
        api.post(f"flow_runs/{run_id}/input", {"key": "other", "value": "1"})

        read = api.get(f"flow_runs/{run_id}/input/greeting-1")
        assert (read.status_code, read.content) == (200, b'"hi"')
        assert read["Content-Type"].startswith("text/plain")

        first = api.post(f"flow_runs/{run_id}/input/filter", {"prefix": "greeting"}).json()
        assert [i["key"] for i in first] == ["greeting-1"]  # limit defaults to 1, oldest first
        assert first[0]["sender"] == "me" and first[0]["flow_run_id"] == run_id and first[0]["id"]
        rest = api.post(f"flow_runs/{run_id}/input/filter", {"prefix": "greeting", "limit": 10,
                                                             "exclude_keys": ["greeting-1"]}).json()  # fmt: skip
        assert [i["key"] for i in rest] == ["greeting-2"]

        assert api.delete(f"flow_runs/{run_id}/input/greeting-1").status_code == 204
        assert api.delete(f"flow_runs/{run_id}/input/greeting-1").status_code == 404
        missing = api.get(f"flow_runs/{run_id}/input/greeting-1")
        assert (missing.status_code, missing.json()) == (404, {"detail": "Flow run input not found"})
        assert set(_inputs(tenant, run_id)) == {"greeting-2", "other"}

    def test_a_key_is_written_once(self, api, tenant):
        run_id = api.run()["id"]
        assert api.post(f"flow_runs/{run_id}/input", {"key": "k", "value": "1"}).status_code == 201
        again = api.post(f"flow_runs/{run_id}/input", {"key": "k", "value": "2"})
        assert (again.status_code, again.json()["detail"]) == (
            409,
            "A flow run input with this key already exists.",
        )
        assert _inputs(tenant, run_id) == {"k": "1"}

    @pytest.mark.parametrize(
        "body",
        [{}, {"key": "k"}, {"value": "v"}, {"key": "Upper", "value": "v"}, {"key": "a b", "value": "v"},
         {"key": "k", "value": {"not": "a string"}}, {"key": "k", "value": "v", "sender": 5}],
    )  # fmt: skip
    def test_bad_bodies_are_422_and_write_nothing(self, api, tenant, body):
        run_id = api.run()["id"]
        assert api.post(f"flow_runs/{run_id}/input", body).status_code == 422
        assert _inputs(tenant, run_id) == {}

    def test_unknown_run_is_404(self, api):
        response = api.post(f"flow_runs/{uuid.uuid4()}/input", {"key": "k", "value": "v"})
        assert (response.status_code, response.json()["detail"]) == (404, "Flow run not found")

    def test_filter_needs_a_prefix(self, api):
        run_id = api.run()["id"]
        assert api.post(f"flow_runs/{run_id}/input/filter", {}).status_code == 422

    def test_viewer_reads_but_cannot_write(self, api, tenant, as_role):
        run_id = api.run()["id"]
        api.post(f"flow_runs/{run_id}/input", {"key": "k", "value": "v"})
        viewer = Api(as_role("viewer"), tenant.prefix)
        assert viewer.get(f"flow_runs/{run_id}/input/k").status_code == 200
        assert viewer.post(f"flow_runs/{run_id}/input/filter", {"prefix": ""}).status_code == 200
        assert viewer.post(f"flow_runs/{run_id}/input", {"key": "k2", "value": "v"}).status_code == 403
        assert viewer.delete(f"flow_runs/{run_id}/input/k").status_code == 403
        assert viewer.post(f"flow_runs/{run_id}/resume", {}).status_code == 403
        assert _inputs(tenant, run_id) == {"k": "v"}
        runner = Api(as_role("worker"), tenant.prefix)  # run_flows
        assert runner.post(f"flow_runs/{run_id}/input", {"key": "k2", "value": "v"}).status_code == 201
        assert runner.delete(f"flow_runs/{run_id}/input/k2").status_code == 204

    def test_another_workspace_gets_404_and_changes_nothing(self, api, tenant, other):
        client, b = other
        run_id = api.run()["id"]
        api.post(f"flow_runs/{run_id}/input", {"key": "k", "value": "secret"})
        theirs = Api(client, b.prefix)
        assert theirs.get(f"flow_runs/{run_id}/input/k").status_code == 404
        assert theirs.post(f"flow_runs/{run_id}/input/filter", {"prefix": ""}).json() == []
        assert theirs.post(f"flow_runs/{run_id}/input", {"key": "k2", "value": "v"}).status_code == 404
        assert theirs.delete(f"flow_runs/{run_id}/input/k").status_code == 404
        assert theirs.post(f"flow_runs/{run_id}/resume", {}).status_code == 404
        # Their own prefix cannot name our run either.
        assert Api(client, tenant.prefix).get(f"flow_runs/{run_id}/input/k").status_code == 404
        assert _inputs(tenant, run_id) == {"k": "secret"}


class TestResume:
    def test_resume_with_valid_input_runs_and_stores_the_response(self, api, tenant):
        run_id = _paused_waiting_for_input(api)
        response = api.post(f"flow_runs/{run_id}/resume", {"run_input": {"approved": True, "note": "ok"}})
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["status"], body["state"]["type"]) == ("ACCEPT", "RUNNING")
        stored = _inputs(tenant, run_id)
        assert json.loads(stored[keyset("k1")["response"]]) == {"approved": True, "note": "ok"}
        run = api.get(f"flow_runs/{run_id}").json()
        assert run["state_type"] == "RUNNING" and run["empirical_policy"]["resuming"] is True
        assert run["empirical_policy"]["pause_keys"] == ["k1"]

    @pytest.mark.parametrize(
        "run_input, reason",
        [
            ({"approved": "maybe"}, "Reason: Validation failed for field 'approved'. Failure reason: 'maybe' is not of type 'boolean'"),
            ({}, "Reason: Validation failed. Failure reason: 'approved' is a required property"),
            (None, "Reason: Validation failed. Failure reason: 'approved' is a required property"),
        ],
    )  # fmt: skip
    def test_input_that_does_not_fit_the_schema_is_refused(self, api, tenant, run_input, reason):
        run_id = _paused_waiting_for_input(api)
        response = api.post(f"flow_runs/{run_id}/resume", {"run_input": run_input})
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "REJECT" and body["state"]["type"] == "PAUSED"
        assert body["details"] == {"type": "abort_details", "reason": reason}
        assert api.get(f"flow_runs/{run_id}").json()["state_type"] == "PAUSED"
        assert keyset("k1")["response"] not in _inputs(tenant, run_id)

    def test_missing_or_broken_schema_is_refused(self, api, tenant):
        run_id = _running(api)
        api.pause(run_id)
        body = api.post(f"flow_runs/{run_id}/resume", {"run_input": {"approved": True}}).json()
        assert (body["status"], body["details"]["reason"]) == ("REJECT", "Run input schema not found.")
        api.post(f"flow_runs/{run_id}/input", {"key": keyset("k1")["schema"], "value": "{not json"})
        body = api.post(f"flow_runs/{run_id}/resume", {"run_input": {"approved": True}}).json()
        assert (body["status"], body["details"]["reason"]) == (
            "REJECT",
            "Run input schema is not valid JSON.",
        )
        assert api.get(f"flow_runs/{run_id}").json()["state_type"] == "PAUSED"

    def test_a_pause_without_input_resumes_without_it(self, api, tenant):
        run_id = _running(api)
        api.pause(run_id, with_input=False)
        response = api.post(f"flow_runs/{run_id}/resume", {})
        assert (response.status_code, response.json()["status"]) == (201, "ACCEPT")
        assert _inputs(tenant, run_id) == {}

    def test_a_run_that_is_not_paused_cannot_resume(self, api):
        run_id = _running(api)
        response = api.post(f"flow_runs/{run_id}/resume", {"run_input": {"approved": True}})
        assert response.status_code == 200
        assert response.json() == {
            "state": None, "status": "ABORT",
            "details": {"type": "abort_details", "reason": "Cannot resume a flow run that is not paused."},
        }  # fmt: skip

    def test_a_pause_past_its_timeout_fails_the_run(self, api, tenant):
        run_id = _paused_waiting_for_input(api, timeout_seconds=-5)
        response = api.post(f"flow_runs/{run_id}/resume", {"run_input": {"approved": True}})
        body = response.json()
        assert body["status"] == "REJECT" and body["state"]["type"] == "FAILED"
        assert body["details"]["reason"] == "The flow run pause has timed out and can no longer resume."
        assert body["state"]["message"] == "The flow was running and never resumed."
        assert api.get(f"flow_runs/{run_id}").json()["state_type"] == "FAILED"
        assert keyset("k1")["response"] not in _inputs(tenant, run_id)

    def test_a_suspended_run_resumes_into_scheduled_through_its_deployment(self, api):
        run = api.run(deployment_id=str(uuid.uuid4()))
        api.set_state(run["id"], "RUNNING")
        assert (
            api.set_state(run["id"], "PAUSED", "Suspended", pause_key="s1", pause_reschedule=True).json()[
                "status"
            ]
            == "ACCEPT"
        )
        body = api.post(f"flow_runs/{run['id']}/resume", {}).json()
        assert (body["status"], body["state"]["type"], body["state"]["name"]) == (
            "ACCEPT",
            "SCHEDULED",
            "Resuming",
        )

    def test_suspending_needs_a_deployment(self, api):
        run_id = _running(api)
        body = api.set_state(run_id, "PAUSED", "Suspended", pause_key="s1", pause_reschedule=True).json()
        assert (
            body["status"] == "ABORT"
            and body["details"]["reason"] == "Cannot suspend flows without a deployment."
        )

    def test_the_same_pause_fires_once_and_a_new_pause_clears_stale_input(self, api, tenant):
        run_id = _paused_waiting_for_input(api)
        api.post(f"flow_runs/{run_id}/resume", {"run_input": {"approved": True}})
        again = api.pause(run_id).json()
        assert again["status"] == "REJECT" and again["details"]["reason"] == "This pause has already fired."
        assert keyset("k1")["response"] in _inputs(tenant, run_id)
        # Input left under the keyset of a pause that has not fired yet belongs to an earlier attempt.
        for key in keyset("k2").values():
            api.post(f"flow_runs/{run_id}/input", {"key": key, "value": "1"})
        assert api.pause(run_id, key="k2").json()["status"] == "ACCEPT"
        assert not set(keyset("k2").values()) & set(_inputs(tenant, run_id))
        assert keyset("k1")["response"] in _inputs(tenant, run_id)

    def test_bad_resume_bodies(self, api, tenant):
        run_id = _paused_waiting_for_input(api)
        for body in ({"run_input": "yes"}, {"run_input": [1]}, [1]):
            assert api.post(f"flow_runs/{run_id}/resume", body).status_code == 422
        assert api.post(f"flow_runs/{uuid.uuid4()}/resume", {}).status_code == 404
        assert FlowRun.objects.for_workspace(tenant.workspace.id).get(id=run_id).state_type == "PAUSED"
        assert FlowRunState.objects.for_workspace(tenant.workspace.id).filter(flow_run_id=run_id).count() == 3


class TestResumeHydration:
    """The UI sends run input with ``__prefect_kind`` values; Prefect hydrates them first."""

    def test_json_and_workspace_variables_are_hydrated_before_validation(self, api, tenant):
        api.post("variables/", {"name": "greeting", "value": "from a variable"})
        run_id = _paused_waiting_for_input(api)
        run_input = {
            "approved": {"__prefect_kind": "json", "value": "true"},
            "note": {"__prefect_kind": "workspace_variable", "variable_name": "greeting"},
            "dropped": {"__prefect_kind": "json"},
        }
        body = api.post(f"flow_runs/{run_id}/resume", {"run_input": run_input}).json()
        assert body["status"] == "ACCEPT", body
        stored = json.loads(_inputs(tenant, run_id)[keyset("k1")["response"]])
        assert stored == {"approved": True, "note": "from a variable"}

    def test_templates_are_rendered_as_prefect_renders_them(self, api, tenant):
        run_id = _paused_waiting_for_input(api)
        run_input = {
            "approved": {"__prefect_kind": "json", "value": "true"},
            "note": {"__prefect_kind": "jinja", "template": "{{ 6 * 7 }} {{ 'ok' | upper }}"},
        }
        body = api.post(f"flow_runs/{run_id}/resume", {"run_input": run_input}).json()
        assert body["status"] == "ACCEPT", body
        stored = json.loads(_inputs(tenant, run_id)[keyset("k1")["response"]])
        assert stored == {"approved": True, "note": "42 OK"}

    @pytest.mark.parametrize(
        "value, reason",
        [
            ({"__prefect_kind": "workspace_variable", "variable_name": "nope"},
             "Error hydrating run input: Variable 'nope' not found in workspace."),
            ({"__prefect_kind": "json", "value": "{oops"},
             "Error hydrating run input: Invalid JSON: Expecting property name enclosed in double quotes: "
             "line 1 column 2 (char 1)"),
            ({"__prefect_kind": "none"}, "Error hydrating run input: Missing 'value' key in __prefect object"),
            ({"__prefect_kind": "jinja", "template": "{{ 1 + }}"},
             "Error hydrating run input: Invalid jinja: unexpected 'end of print statement'"),
        ],
    )  # fmt: skip
    def test_what_cannot_be_hydrated_is_refused(self, api, tenant, value, reason):
        run_id = _paused_waiting_for_input(api)
        body = api.post(f"flow_runs/{run_id}/resume", {"run_input": {"approved": value}}).json()
        assert (body["status"], body["details"]["reason"], body["state"]["type"]) == (
            "REJECT",
            reason,
            "PAUSED",
        )
        assert keyset("k1")["response"] not in _inputs(tenant, run_id)
