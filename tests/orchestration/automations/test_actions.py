"""The actions a firing runs, each through the service the API uses, once per firing, with
Prefect's ``prefect.automation.action.triggered|executed|failed`` events."""

from __future__ import annotations

import json

import pytest

from orchestration.models import Automation, Deployment, FlowRun
from orchestration.services.automation_actions import automation_firing_act
from tests.orchestration.automations.engine import action_runs, automation, emit, emitted, event, firings

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployment_id(tenant, dev):
    flow = dev.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()["id"]
    body = {"name": "nightly", "flow_id": flow, "parameters": {"who": "world", "n": 1}}
    response = dev.post(f"{tenant.prefix}/deployments/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


@pytest.fixture
def flow_run_id(tenant, dev):
    flow = dev.post(f"{tenant.prefix}/flows/", {"name": "work"}, format="json").json()["id"]
    body = {"flow_id": flow, "state": {"type": "RUNNING", "name": "Running"}}
    response = dev.post(f"{tenant.prefix}/flow_runs/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def _runs(tenant, deployment_id):
    return list(FlowRun.objects.for_workspace(tenant.workspace.id).filter(deployment_id=deployment_id))


def test_run_deployment_with_parameters_templated_from_the_event(
    tenant, dev, deployment_id, django_capture_on_commit_callbacks
):
    template = "{{ event.resource['prefect.resource.name'] }} in {{ labels['prefect.resource.id'] }}"
    auto = automation(
        dev,
        tenant,
        expect=["order.placed"],
        for_each=["prefect.resource.id"],
        actions=[
            {
                "type": "run-deployment",
                "source": "selected",
                "deployment_id": deployment_id,
                "parameters": {"who": {"__prefect_kind": "jinja", "template": template}},
            }
        ],
    )
    emit(django_capture_on_commit_callbacks, tenant,
         event("order.placed", resource="shop.order.7", **{"prefect.resource.name": "order 7"}))  # fmt: skip
    (run,) = _runs(tenant, deployment_id)
    assert run.parameters == {"who": "order 7 in shop.order.7", "n": 1}
    assert run.state_type == "SCHEDULED"
    (executed,) = emitted(tenant, "prefect.automation.action.executed")
    assert executed.payload["action_type"] == "run-deployment"
    assert {"prefect.resource.id": f"prefect.flow-run.{run.id}", "prefect.resource.role": "flow-run",
            "prefect.resource.name": run.name} in executed.related  # fmt: skip
    # Delivered again (a retried task): nothing runs twice.
    (firing,) = firings(tenant, auto)
    assert automation_firing_act(workspace_id=firing.workspace_id, firing_id=firing.id) == 0
    assert len(_runs(tenant, deployment_id)) == 1


def test_run_deployment_inferred_from_the_event_and_its_failure(
    tenant, dev, deployment_id, django_capture_on_commit_callbacks
):
    automation(dev, tenant, expect=["go"], actions=[{"type": "run-deployment", "source": "inferred"}])
    related = [
        {"prefect.resource.id": f"prefect.deployment.{deployment_id}", "prefect.resource.role": "deployment"}
    ]
    emit(django_capture_on_commit_callbacks, tenant, event("go", related=related), event("go", seconds=1))
    assert len(_runs(tenant, deployment_id)) == 1
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"] == "No deployment could be inferred"
    assert sorted(r.state for r in action_runs(tenant)) == ["executed", "failed"]
    triggered = emitted(tenant, "prefect.automation.action.triggered")
    assert len(triggered) == 2 and str(failed.follows) in {str(t.id) for t in triggered}


def test_a_template_that_cannot_render_fails_the_action(
    tenant, dev, deployment_id, django_capture_on_commit_callbacks
):
    bad = {"__prefect_kind": "jinja", "template": "{{ event.payload.nope() }}"}
    automation(dev, tenant, expect=["go"], actions=[
        {"type": "run-deployment", "source": "selected", "deployment_id": deployment_id, "parameters": {"who": bad}}
    ])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant, event("go"))
    assert _runs(tenant, deployment_id) == []
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"].startswith("Unable to create flow run from deployment")


def test_run_deployment_with_job_variables_templated_from_the_event(
    tenant, dev, deployment_id, django_capture_on_commit_callbacks
):
    """Job variables are rendered as the parameters are (Prefect passes them through as they are):
    a v1 string template keeps its value's type, a placeholder and a workspace variable too."""
    dev.post(f"{tenant.prefix}/variables/", {"name": "image_tag", "value": "2024.1"}, format="json")
    job_variables = {
        "memory": "{{ event.payload.memory }}",
        "env": {"ORDER": "order {{ event.resource['prefect.resource.name'] }}", "FIXED": "as is"},
        "image": {"__prefect_kind": "jinja", "template": "etl:{{ event.payload.tag }}"},
        "tag": {"__prefect_kind": "workspace_variable", "variable_name": "image_tag"},
    }
    automation(dev, tenant, expect=["order.placed"], actions=[
        {"type": "run-deployment", "source": "selected", "deployment_id": deployment_id,
         "job_variables": job_variables}
    ])  # fmt: skip
    placed = event("order.placed", resource="shop.order.7", **{"prefect.resource.name": "7"})
    placed["payload"] = {"memory": 512, "tag": "v2"}
    emit(django_capture_on_commit_callbacks, tenant, placed)
    (run,) = _runs(tenant, deployment_id)
    assert run.job_variables == {
        "memory": 512, "env": {"ORDER": "order 7", "FIXED": "as is"}, "image": "etl:v2", "tag": "2024.1"
    }  # fmt: skip


def test_job_variables_that_cannot_render_are_refused_or_fail_the_action(
    tenant, dev, deployment_id, django_capture_on_commit_callbacks
):
    body = {"name": "a", "trigger": {"type": "event", "expect": ["go"]}, "actions": [
        {"type": "run-deployment", "source": "selected", "deployment_id": deployment_id,
         "job_variables": {"image": "{{ oops( }}"}}]}  # fmt: skip
    response = dev.post(f"{tenant.prefix}/automations/", body, format="json")
    assert response.status_code == 422
    assert "Invalid job variables" in json.dumps(response.json())
    automation(dev, tenant, expect=["go"], actions=[
        {"type": "run-deployment", "source": "selected", "deployment_id": deployment_id,
         "job_variables": {"image": "{{ event.payload.nope() }}"}}
    ])  # fmt: skip
    emit(django_capture_on_commit_callbacks, tenant, event("go"))
    assert _runs(tenant, deployment_id) == []
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"].startswith("Unable to create flow run from deployment: job variables: ")


def test_pause_and_resume_deployment(tenant, dev, deployment_id, django_capture_on_commit_callbacks):
    selected = {"source": "selected", "deployment_id": deployment_id}
    automation(dev, tenant, name="pause", expect=["stop"], actions=[{"type": "pause-deployment", **selected}])
    automation(
        dev, tenant, name="resume", expect=["start"], actions=[{"type": "resume-deployment", **selected}]
    )
    deployments = Deployment.objects.for_workspace(tenant.workspace.id)
    emit(django_capture_on_commit_callbacks, tenant, event("stop"))
    assert deployments.get(id=deployment_id).paused is True
    emit(django_capture_on_commit_callbacks, tenant, event("start"))
    assert deployments.get(id=deployment_id).paused is False
    assert len(emitted(tenant, "prefect.automation.action.executed")) == 2


def test_cancel_flow_run_inferred_from_the_event(
    tenant, dev, flow_run_id, django_capture_on_commit_callbacks
):
    auto = automation(dev, tenant, expect=["too.slow"], actions=[{"type": "cancel-flow-run"}])
    emit(
        django_capture_on_commit_callbacks,
        tenant,
        event("too.slow", resource=f"prefect.flow-run.{flow_run_id}"),
    )
    run = FlowRun.objects.for_workspace(tenant.workspace.id).get(id=flow_run_id)
    assert run.state_type == "CANCELLING"
    assert run.state.message == f"Cancelled by Automation {auto}"
    # The state change is an event of its own, evaluated like any other.
    assert emitted(tenant, "prefect.flow-run.Cancelling")


def test_change_flow_run_state(tenant, dev, flow_run_id, django_capture_on_commit_callbacks):
    action = {"type": "change-flow-run-state", "state": "FAILED", "message": "given up"}
    automation(dev, tenant, expect=["give.up"], actions=[action])
    emit(
        django_capture_on_commit_callbacks,
        tenant,
        event("give.up", resource=f"prefect.flow-run.{flow_run_id}"),
    )
    run = FlowRun.objects.for_workspace(tenant.workspace.id).get(id=flow_run_id)
    assert (run.state_type, run.state.message) == ("FAILED", "given up")


def test_a_refused_state_change_fails_the_action(
    tenant, dev, flow_run_id, django_capture_on_commit_callbacks
):
    automation(
        dev,
        tenant,
        name="finish",
        expect=["finish"],
        actions=[{"type": "change-flow-run-state", "state": "COMPLETED"}],
    )
    automation(dev, tenant, name="cancel", expect=["cancel"], actions=[{"type": "cancel-flow-run"}])
    resource = f"prefect.flow-run.{flow_run_id}"
    emit(django_capture_on_commit_callbacks, tenant, event("finish", resource=resource))
    emit(django_capture_on_commit_callbacks, tenant, event("cancel", seconds=1, resource=resource))
    # A COMPLETED run does not go to CANCELLING (the core policy aborts): the action fails with why.
    assert FlowRun.objects.for_workspace(tenant.workspace.id).get(id=flow_run_id).state_type == "COMPLETED"
    assert sorted(r.state for r in action_runs(tenant)) == ["executed", "failed"]
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"].startswith("Failed to set state")


def test_pause_and_resume_automation(tenant, dev, django_capture_on_commit_callbacks):
    target = automation(dev, tenant, name="target", expect=["never"])
    automation(dev, tenant, name="pauser", expect=["quiet"],
               actions=[{"type": "pause-automation", "source": "selected", "automation_id": target}])  # fmt: skip
    automation(dev, tenant, name="resumer", expect=["loud"],
               actions=[{"type": "resume-automation", "source": "selected", "automation_id": target}])  # fmt: skip
    rows = Automation.objects.for_workspace(tenant.workspace.id)
    emit(django_capture_on_commit_callbacks, tenant, event("quiet"))
    assert rows.get(id=target).enabled is False
    emit(django_capture_on_commit_callbacks, tenant, event("loud"))
    assert rows.get(id=target).enabled is True


def test_an_action_that_fails_says_why_and_the_next_still_runs(
    tenant, dev, django_capture_on_commit_callbacks
):
    automation(dev, tenant, expect=["go"], actions=[{"type": "delete-flow-run"}, {"type": "do-nothing"}])
    emit(django_capture_on_commit_callbacks, tenant, event("go", resource="prefect.flow-run.x"))
    assert [(r.action_index, r.state) for r in action_runs(tenant)] == [(0, "failed"), (1, "executed")]
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"] == "No flow run could be inferred"  # no run id in the event


def test_actions_on_trigger_see_the_triggered_event(tenant, dev, django_capture_on_commit_callbacks):
    body = {
        "name": "on-trigger",
        "trigger": {"type": "event", "posture": "Reactive", "expect": ["go"], "threshold": 1},
        "actions": [{"type": "do-nothing"}],
        "actions_on_trigger": [{"type": "pause-automation", "source": "inferred"}],
    }
    auto = dev.post(f"{tenant.prefix}/automations/", body, format="json").json()["id"]
    emit(django_capture_on_commit_callbacks, tenant, event("go", resource="thing.1"))
    # Inferred from the automation.triggered event, whose resource is the automation itself.
    assert Automation.objects.for_workspace(tenant.workspace.id).get(id=auto).enabled is False
    assert [(r.action_index, r.state) for r in action_runs(tenant)] == [(0, "executed"), (1, "executed")]
