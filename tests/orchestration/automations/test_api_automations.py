"""Prefect's ``/automations`` routes per workspace: create, read, replace, pause, delete, filter,
count, related-to and owned-by, with Prefect's validation of triggers and actions."""

from __future__ import annotations

import uuid

import pytest

from orchestration.models import Automation, AutomationRelatedResource, Deployment, Flow, WorkPool, WorkQueue
from tenants.scoping import workspace_scope

pytestmark = pytest.mark.django_db


def _deployment(tenant, name="dep", *, base_job_template=None) -> Deployment:
    with workspace_scope(tenant.workspace.id):
        flow, _ = Flow.objects.get_or_create(workspace_id=tenant.workspace.id, name="wf")
        pool = WorkPool.objects.create(
            workspace_id=tenant.workspace.id, name=f"pool-{name}", type="process",
            base_job_template=base_job_template or {},
        )  # fmt: skip
        queue = WorkQueue.objects.create(workspace_id=tenant.workspace.id, work_pool=pool, name="default")
        return Deployment.objects.create(
            workspace_id=tenant.workspace.id,
            flow=flow,
            name=name,
            work_queue=queue,
            work_queue_name="default",
        )


def body(name="auto", **overrides) -> dict:
    data = {
        "name": name,
        "trigger": {
            "type": "event",
            "posture": "Reactive",
            "expect": ["prefect.flow-run.Failed"],
            "threshold": 1,
        },
        "actions": [{"type": "do-nothing"}],
    }
    data.update(overrides)
    return data


def rows(tenant):
    return Automation.objects.for_workspace(tenant.workspace.id)


class TestCreate:
    def test_created_in_prefect_shape_with_defaults_filled(self, tenant, dev):
        answer = dev.post(f"{tenant.prefix}/automations/", body(), format="json")
        assert answer.status_code == 201, answer.content
        data = answer.json()
        assert set(data) == {"id", "created", "updated", "name", "description", "enabled", "tags", "trigger",
                             "actions", "actions_on_trigger", "actions_on_resolve"}  # fmt: skip
        assert (
            data["enabled"] is True
            and data["description"] == ""
            and data["actions"] == [{"type": "do-nothing"}]
        )
        trigger = data["trigger"]
        assert trigger["within"] == 0.0 and trigger["match"] == {} and trigger["for_each"] == []
        assert trigger["expect"] == ["prefect.flow-run.Failed"] and uuid.UUID(trigger["id"])
        assert rows(tenant).get().trigger == trigger

    def test_client_supplied_trigger_ids_are_replaced(self, tenant, dev):
        mine = str(uuid.uuid4())
        compound = {"type": "compound", "require": "all", "within": 60, "id": mine,
                    "triggers": [{"posture": "Reactive", "expect": ["a"], "id": mine}]}  # fmt: skip
        data = dev.post(f"{tenant.prefix}/automations/", body(trigger=compound), format="json").json()
        assert data["trigger"]["id"] != mine and data["trigger"]["triggers"][0]["id"] != mine
        assert data["trigger"]["within"] == 60.0

    @pytest.mark.parametrize(
        "overrides",
        [
            {"trigger": {"type": "event", "posture": "Proactive", "within": 5}},
            {
                "trigger": {
                    "type": "compound",
                    "require": 3,
                    "within": None,
                    "triggers": [{"posture": "Reactive"}],
                }
            },
            {"trigger": {"type": "event", "posture": "Sideways"}},
            {"actions": [{"type": "run-deployment"}]},  # selected needs deployment_id
            {
                "actions": [
                    {"type": "pause-work-pool", "source": "inferred", "work_pool_id": str(uuid.uuid4())}
                ]
            },
            {"actions": [{"type": "change-flow-run-state", "state": "NOPE"}]},
            {
                "actions": [
                    {"type": "send-notification", "block_document_id": str(uuid.uuid4()), "body": "{{ x"}
                ]
            },
            {
                "actions": [
                    {
                        "type": "call-webhook",
                        "block_document_id": str(uuid.uuid4()),
                        "payload": "{% for a in b %}{% for c in d %}{% for e in f %}{% endfor %}{% endfor %}{% endfor %}",
                    }
                ]
            },  # fmt: skip
            {"actions": [{"type": "launch-rocket"}]},
            {
                "trigger": {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Running"]},
                "actions": [{"type": "run-deployment", "source": "inferred"}],
            },  # an infinite loop
            {"surprise": 1},  # AutomationCreate forbids unknown fields
            {"name": None},
        ],
    )
    def test_invalid_bodies_are_422_and_store_nothing(self, tenant, dev, overrides):
        answer = dev.post(f"{tenant.prefix}/automations/", body(**overrides), format="json")
        assert answer.status_code == 422, answer.content
        assert "exception_detail" in answer.json()
        assert not rows(tenant).exists()

    def test_run_deployment_parameters_are_checked_as_prefect_hydrates_them(self, tenant, dev):
        deployment = _deployment(tenant)
        action = {"type": "run-deployment", "deployment_id": str(deployment.id),
                  "parameters": {"x": {"__prefect_kind": "json", "value": "{not json"}}}  # fmt: skip
        answer = dev.post(f"{tenant.prefix}/automations/", body(actions=[action]), format="json")
        assert answer.status_code == 422 and "Invalid parameters" in str(answer.json())
        action["parameters"] = {"x": "{{ event.id }}", "y": {"__prefect_kind": "workspace_variable",
                                                              "variable_name": "v"}}  # fmt: skip
        assert (
            dev.post(f"{tenant.prefix}/automations/", body(actions=[action]), format="json").status_code
            == 201
        )

    def test_a_selected_deployment_becomes_a_related_resource_and_the_owner_too(self, tenant, dev):
        deployment = _deployment(tenant)
        run = {"type": "run-deployment", "deployment_id": str(deployment.id)}
        owner = f"prefect.deployment.{deployment.id}"
        created = dev.post(
            f"{tenant.prefix}/automations/", body(actions=[run], owner_resource=owner), format="json"
        ).json()
        related = AutomationRelatedResource.objects.for_workspace(tenant.workspace.id).get()
        assert (related.resource_id, related.automation_owned_by_resource) == (owner, True)
        listed = dev.get(f"{tenant.prefix}/automations/related-to/{owner}").json()
        assert [a["id"] for a in listed] == [created["id"]]
        assert dev.get(f"{tenant.prefix}/automations/related-to/prefect.deployment.nope").json() == []

    def test_job_variables_are_checked_against_the_deployments_pool(self, tenant, dev):
        template = {"job_configuration": {}, "variables": {"type": "object", "required": ["image"],
                    "properties": {"image": {"type": "string"}}}}  # fmt: skip
        deployment = _deployment(tenant, base_job_template=template)
        action = {
            "type": "run-deployment",
            "deployment_id": str(deployment.id),
            "job_variables": {"image": 5},
        }
        answer = dev.post(f"{tenant.prefix}/automations/", body(actions=[action]), format="json")
        assert answer.status_code == 422 and answer.json()["detail"].startswith("Error creating automation:")
        action["job_variables"] = {"image": "python:3.12"}
        assert (
            dev.post(f"{tenant.prefix}/automations/", body(actions=[action]), format="json").status_code
            == 201
        )

    @pytest.mark.parametrize(
        "action",
        [
            {"type": "run-deployment", "deployment_id": "ID"},
            {"type": "pause-work-pool", "work_pool_id": "ID"},
            {"type": "resume-work-queue", "work_queue_id": "ID"},
            {"type": "send-notification", "block_document_id": "ID", "body": "hi"},
            {"type": "pause-automation", "automation_id": "ID"},
        ],
    )
    def test_actions_name_objects_of_this_workspace_only(self, two_workspaces, api_client, action):
        from tests.conftest import bearer

        a, b = two_workspaces
        other = _deployment(b)
        with workspace_scope(b.workspace.id):
            ids = {"run-deployment": other.id, "pause-work-pool": other.work_queue.work_pool_id,
                   "resume-work-queue": other.work_queue_id, "send-notification": uuid.uuid4(),
                   "pause-automation": Automation.objects.create(workspace_id=b.workspace.id, name="b",
                                                                 trigger={}, actions=[]).id}  # fmt: skip
        action = {k: (str(ids[action["type"]]) if v == "ID" else v) for k, v in action.items()}
        client = bearer(api_client, a.service_key)
        answer = client.post(f"{a.prefix}/automations/", body(actions=[action]), format="json")
        assert answer.status_code == 404, answer.content
        assert not rows(a).exists()


class TestReadUpdateDelete:
    def _create(self, tenant, dev, **overrides) -> dict:
        answer = dev.post(f"{tenant.prefix}/automations/", body(**overrides), format="json")
        assert answer.status_code == 201, answer.content
        return answer.json()

    def test_get_put_patch_delete(self, tenant, dev):
        p = tenant.prefix
        created = self._create(tenant, dev, description="first", tags=["a"])
        url = f"{p}/automations/{created['id']}"
        assert dev.get(url).json() == created
        replaced = body(name="renamed", actions=[{"type": "cancel-flow-run"}])
        assert dev.put(url, replaced, format="json").status_code == 204
        now = dev.get(url).json()
        assert now["name"] == "renamed" and now["actions"] == [{"type": "cancel-flow-run"}]
        assert now["description"] == "first"  # a field the PUT did not set is kept (Prefect's exclude_unset)
        assert now["trigger"]["id"] != created["trigger"]["id"]
        assert dev.patch(url, {"enabled": False}, format="json").status_code == 204
        assert dev.get(url).json()["enabled"] is False
        assert dev.patch(url, {"enabled": "maybe"}, format="json").status_code == 422
        assert dev.patch(url, {"enabled": True, "name": "x"}, format="json").status_code == 422
        assert dev.delete(url).status_code == 204
        assert dev.get(url).status_code == 404
        assert dev.delete(url).json() == {"detail": "Automation not found"}
        assert dev.put(url, replaced, format="json").status_code == 404
        assert dev.patch(url, {"enabled": True}, format="json").status_code == 404

    def test_re_enabling_an_automation_meets_the_loop_check_again(self, tenant, dev):
        deployment = _deployment(tenant)
        looping = body(enabled=False,
                       trigger={"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Running"]},
                       actions=[{"type": "run-deployment", "deployment_id": str(deployment.id)}])  # fmt: skip
        created = self._create(tenant, dev, **looping)
        url = f"{tenant.prefix}/automations/{created['id']}"
        answer = dev.patch(url, {"enabled": True}, format="json")
        assert answer.status_code == 422 and "infinite loop" in str(answer.json())
        assert dev.get(url).json()["enabled"] is False

    def test_put_replaces_the_related_deployments(self, tenant, dev):
        one, two = _deployment(tenant, "one"), _deployment(tenant, "two")
        created = self._create(
            tenant, dev, actions=[{"type": "run-deployment", "deployment_id": str(one.id)}]
        )
        url = f"{tenant.prefix}/automations/{created['id']}"
        dev.put(url, body(actions=[{"type": "run-deployment", "deployment_id": str(two.id)}]), format="json")
        related = AutomationRelatedResource.objects.for_workspace(tenant.workspace.id)
        assert list(related.values_list("resource_id", flat=True)) == [f"prefect.deployment.{two.id}"]

    def test_a_path_that_is_no_uuid_is_404(self, tenant, dev):
        assert dev.get(f"{tenant.prefix}/automations/not-a-uuid").status_code == 404

    def test_filter_sort_page_and_count(self, tenant, dev):
        p = tenant.prefix
        for name, tags in (("b", ["x"]), ("a", []), ("c", ["x", "y"])):
            self._create(tenant, dev, name=name, tags=tags)
        names = lambda b: [a["name"] for a in dev.post(f"{p}/automations/filter", b, format="json").json()]  # noqa: E731
        assert names({}) == ["a", "b", "c"]
        assert names({"sort": "NAME_DESC", "limit": 2}) == ["c", "b"]
        assert names({"offset": 1}) == ["b", "c"]
        assert names({"automations": {"name": {"any_": ["c", "a"]}}}) == ["a", "c"]
        assert names({"automations": {"tags": {"all_": ["x", "y"]}}}) == ["c"]
        assert names({"automations": {"tags": {"is_null_": True}}}) == ["a"]
        assert names({"automations": {"created": {"before_": "2000-01-01T00:00:00Z"}}}) == []
        assert dev.post(f"{p}/automations/count", {}, format="json").json() == 3
        assert (
            dev.post(
                f"{p}/automations/count", {"automations": {"tags": {"any_": ["x"]}}}, format="json"
            ).json()
            == 2
        )
        for bad in (
            {"sort": "NOPE"},
            {"limit": 201},
            {"offset": -1},
            {"automations": {"name": {"like_": "a"}}},
        ):
            assert dev.post(f"{p}/automations/filter", bad, format="json").status_code == 422, bad

    def test_filter_lists_with_a_bounded_number_of_queries(self, tenant, dev, django_assert_max_num_queries):
        for i in range(30):
            self._create(tenant, dev, name=f"a{i}")
        with django_assert_max_num_queries(12):
            assert len(dev.post(f"{tenant.prefix}/automations/filter", {}, format="json").json()) == 30

    def test_owned_by_deletes_only_what_the_resource_owns(self, tenant, dev):
        owned = self._create(tenant, dev, name="owned", owner_resource="prefect.deployment.d1")
        self._create(tenant, dev, name="other", owner_resource="prefect.deployment.d2")
        self._create(tenant, dev, name="free")
        listed = dev.get(f"{tenant.prefix}/automations/owned-by/prefect.deployment.d1")
        assert listed.status_code == 200 and [a["id"] for a in listed.json()] == [owned["id"]]
        answer = dev.delete(f"{tenant.prefix}/automations/owned-by/prefect.deployment.d1")
        assert answer.status_code == 202
        assert sorted(rows(tenant).values_list("name", flat=True)) == ["free", "other"]
        assert dev.get(f"{tenant.prefix}/automations/{owned['id']}").status_code == 404


class TestTenancyAndScopes:
    def test_another_workspaces_automation_is_404(self, two_workspaces, api_client):
        from tests.conftest import bearer

        a, b = two_workspaces
        created = (
            bearer(api_client, a.service_key).post(f"{a.prefix}/automations/", body(), format="json").json()
        )
        as_b = bearer(api_client, b.service_key)
        url = f"{b.prefix}/automations/{created['id']}"
        assert as_b.get(url).status_code == 404
        assert as_b.put(url, body(name="stolen"), format="json").status_code == 404
        assert as_b.patch(url, {"enabled": False}, format="json").status_code == 404
        assert as_b.delete(url).status_code == 404
        assert as_b.post(f"{b.prefix}/automations/filter", {}, format="json").json() == []
        assert as_b.post(f"{b.prefix}/automations/count", {}, format="json").json() == 0
        assert rows(a).get().enabled is True and rows(a).get().name == "auto"

    def test_viewers_see_and_developers_manage(self, tenant, role_client, dev):
        created = dev.post(f"{tenant.prefix}/automations/", body(), format="json").json()
        viewer = role_client("viewer")  # the same client, now holding a Viewer's key
        url = f"{tenant.prefix}/automations/{created['id']}"
        assert viewer.get(url).status_code == 200
        assert viewer.post(f"{tenant.prefix}/automations/filter", {}, format="json").status_code == 200
        assert viewer.post(f"{tenant.prefix}/automations/", body(), format="json").status_code == 403
        assert viewer.patch(url, {"enabled": False}, format="json").status_code == 403
        assert viewer.delete(url).status_code == 403
        assert viewer.delete(f"{tenant.prefix}/automations/owned-by/x").status_code == 403
        worker = role_client("worker")
        assert worker.get(url).status_code == 403
        assert rows(tenant).get().enabled is True


class TestTemplateValidate:
    @pytest.mark.parametrize("path", ["templates/validate", "automations/templates/validate"])
    def test_valid_invalid_and_sandbox_limits(self, tenant, dev, path):
        url = f"{tenant.prefix}/{path}"
        assert dev.post(url, "Hello {{ flow_run.name }}", format="json").status_code == 204
        assert dev.post(url, "", format="json").status_code == 204
        bad = dev.post(url, "line one\n{{ oops", format="json")
        assert bad.status_code == 422
        assert bad.json()["error"]["line"] == 2 and bad.json()["error"]["source"] == "line one\n{{ oops"
        loops = "{% for a in x %}" * 11 + "{% endfor %}" * 11
        deep = dev.post(url, loops, format="json")
        assert deep.status_code == 422 and "for loops" in deep.json()["error"]["message"]
        assert dev.post(url, {"template": "x"}, format="json").status_code == 422


# --- what this server refuses beyond Prefect's server: a `within` no window can hold, Cloud's types ---


def _only_error(answer) -> dict:
    assert answer.status_code == 422, answer.content
    (error,) = answer.json()["exception_detail"]
    return error


class TestBoundedWithin:
    @pytest.mark.parametrize("posture", ["Reactive", "Proactive"])
    def test_a_huge_within_is_refused(self, tenant, dev, posture):
        trigger = {"type": "event", "posture": posture, "expect": ["prefect.flow-run.Failed"], "within": 2e13}
        error = _only_error(dev.post(f"{tenant.prefix}/automations/", body(trigger=trigger), format="json"))
        assert error["loc"] == ["trigger"]
        assert error["msg"] == (
            "trigger.within must be at most 366 days (31622400 seconds); got 20000000000000 seconds"
        )
        assert not rows(tenant).exists()

    def test_a_composite_within_and_a_childs_are_bounded(self, tenant, dev):
        child = {
            "type": "event",
            "posture": "Reactive",
            "expect": ["prefect.flow-run.Failed"],
            "within": "P400D",
        }
        url = f"{tenant.prefix}/automations/"
        compound = {"type": "compound", "require": "any", "within": 60, "triggers": [child]}
        error = _only_error(dev.post(url, body(trigger=compound), format="json"))
        assert error["msg"].startswith("trigger.triggers[0].within must be at most 366 days")
        sequence = {"type": "sequence", "within": 400 * 86400, "triggers": [{**child, "within": 0}]}
        error = _only_error(dev.post(url, body(trigger=sequence), format="json"))
        assert error["msg"].startswith("trigger.within must be at most 366 days")

    def test_the_bound_itself_is_accepted_and_an_update_is_bounded_too(self, tenant, dev):
        trigger = {"type": "event", "posture": "Proactive", "expect": ["prefect.flow-run.Failed"]}
        trigger["within"] = 366 * 86400
        answer = dev.post(f"{tenant.prefix}/automations/", body(trigger=trigger), format="json")
        assert answer.status_code == 201, answer.content
        url = f"{tenant.prefix}/automations/{answer.json()['id']}"
        error = _only_error(dev.put(url, body(trigger={**trigger, "within": 366 * 86400 + 1}), format="json"))
        assert "must be at most 366 days" in error["msg"]


class TestCloudOnlyTypes:
    def test_a_declare_incident_action_is_one_clear_error(self, tenant, dev):
        for field in ("actions", "actions_on_trigger", "actions_on_resolve"):
            actions = {field: [{"type": "do-nothing"}, {"type": "declare-incident"}]}
            error = _only_error(dev.post(f"{tenant.prefix}/automations/", body(**actions), format="json"))
            assert error == {
                "type": "prefect_cloud_only",
                "loc": [field, 1],
                "msg": "'declare-incident' is a Prefect Cloud-only action type, not supported by this server",
            }
        assert not rows(tenant).exists()

    def test_an_action_naming_its_type_gets_that_types_errors_alone(self, tenant, dev):
        """A bad template in a call-webhook is one error saying so, not one per action type."""
        bad = {
            "type": "call-webhook",
            "block_document_id": str(uuid.uuid4()),
            "payload": "{{ event | nosuch }}",
        }
        error = _only_error(dev.post(f"{tenant.prefix}/automations/", body(actions=[bad]), format="json"))
        assert error["type"] == "invalid_action" and error["loc"] == ["actions", 0]
        assert error["msg"] == (
            "Invalid call-webhook action: Value error, 'payload' is not a valid template: No filter named 'nosuch'."
        )
        missing = {"type": "run-deployment", "source": "selected"}
        error = _only_error(dev.post(f"{tenant.prefix}/automations/", body(actions=[missing]), format="json"))
        assert error["msg"].startswith("Invalid run-deployment action: ") and "deployment_id" in error["msg"]
        assert not rows(tenant).exists()

    def test_a_metric_trigger_is_one_clear_error_wherever_it_is(self, tenant, dev):
        metric = {"type": "metric", "posture": "Metric", "metric": {"name": "successes", "threshold": 0.9,
                  "operator": "<", "range": 300, "firing_for": 300}}  # fmt: skip
        url = f"{tenant.prefix}/automations/"
        error = _only_error(dev.post(url, body(trigger=metric), format="json"))
        assert error == {
            "type": "prefect_cloud_only",
            "loc": ["trigger"],
            "msg": "'metric' is a Prefect Cloud-only trigger type, not supported by this server",
        }
        event_trigger = {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Failed"]}
        nested = {"type": "compound", "require": "all", "within": 60,
                  "triggers": [event_trigger, {"type": "sequence", "within": 60, "triggers": [metric]}]}  # fmt: skip
        error = _only_error(dev.post(url, body(trigger=nested), format="json"))
        assert error["msg"] == (
            "trigger.triggers[1].triggers[0]: 'metric' is a Prefect Cloud-only trigger type, "
            "not supported by this server"
        )
        assert not rows(tenant).exists()
