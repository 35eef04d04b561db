"""Automations end to end: the unmodified ``prefect`` client and CLI against the live server."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from orchestration.models import Automation, AutomationRelatedResource, Deployment, Event, Flow, FlowRun
from tests.live.conftest import FLOWS_DIR, make_live_tenant

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _rows(workspace, **lookup):
    return Automation.objects.for_workspace(workspace.id).filter(**lookup)


def _create(run_prefect, name, deployment_id=None, **kwargs):
    env = {"AUTOMATION_NAME": name}
    if deployment_id:
        env["AUTOMATION_DEPLOYMENT_ID"] = str(deployment_id)
    run = run_prefect("automations_client.py", env, **kwargs)
    assert run.result is not None, run.describe()
    return run


def test_the_client_creates_reads_and_relates_an_automation(run_prefect, live_tenant):
    workspace = live_tenant.workspace
    flow = Flow.objects.for_workspace(workspace.id).create(workspace_id=workspace.id, name="wf")
    deployment = Deployment.objects.for_workspace(workspace.id).create(
        workspace_id=workspace.id, flow=flow, name="d"
    )
    run = _create(run_prefect, "on-failures", deployment.id)
    result = run.result
    assert "error" not in result, run.describe()
    assert result["read_by_name"] == result["id"] and result["read_by_id"] == "on-failures"
    assert result["within"] == 120.0 and result["hello"] == "👋"
    assert result["related"] == [result["id"]]
    # The meta routes the client reads: the worker metadata Prefect ships, served offline.
    assert {"process", "kubernetes", "docker"} <= set(result["worker_types"])
    assert result["api_version"].startswith("3.9") and result["storage"] == "None"
    stored = _rows(workspace).get()
    assert str(stored.id) == result["id"] and stored.description == "from the live test"
    assert stored.trigger["posture"] == "Proactive" and stored.trigger["threshold"] == 2
    assert [a["type"] for a in stored.actions] == ["do-nothing", "run-deployment"]
    related = AutomationRelatedResource.objects.for_workspace(workspace.id).get()
    assert related.resource_id == f"prefect.deployment.{deployment.id}"


def test_cli_ls_inspect_pause_resume_delete(run_prefect, live_tenant):
    workspace = live_tenant.workspace
    assert "error" not in _create(run_prefect, "nightly-watch").result
    listed = run_prefect(["prefect", "automation", "ls"])
    assert listed.returncode == 0 and "nightly-watch" in listed.stdout, listed.describe()
    inspected = run_prefect(["prefect", "automation", "inspect", "nightly-watch", "--json"])
    assert inspected.returncode == 0, inspected.describe()
    [shown] = json.loads(inspected.stdout)  # by name: every automation of that name
    assert shown["name"] == "nightly-watch" and shown["trigger"]["threshold"] == 2
    paused = run_prefect(["prefect", "automation", "pause", "nightly-watch"])
    assert paused.returncode == 0, paused.describe()
    assert _rows(workspace, name="nightly-watch").get().enabled is False
    resumed = run_prefect(["prefect", "automation", "resume", "nightly-watch"])
    assert resumed.returncode == 0, resumed.describe()
    assert _rows(workspace, name="nightly-watch").get().enabled is True
    deleted = run_prefect(["prefect", "automation", "delete", "nightly-watch"])
    assert deleted.returncode == 0, deleted.describe()
    assert not _rows(workspace).exists()


def test_cli_create_inspect_update_and_delete_by_id_and_all(run_prefect, live_tenant):
    """``create --from-json`` with a list, ``inspect --id --yaml``, ``update --id``, ``delete --id``
    and ``delete --all`` (the CLI pages through ``automations/filter`` with ``offset`` first)."""
    workspace = live_tenant.workspace
    body = {"name": "from-json", "trigger": {"type": "event", "posture": "Reactive", "expect": ["x.y"]},
            "actions": [{"type": "do-nothing"}]}  # fmt: skip
    bodies = [body, {**body, "name": "second"}, {**body, "name": "third"}]
    created = run_prefect(["prefect", "automation", "create", "--from-json", json.dumps(bodies)])
    assert created.returncode == 0 and "Created 3 automation(s)" in created.stdout, created.describe()
    first = _rows(workspace, name="from-json").get()

    inspected = run_prefect(["prefect", "automation", "inspect", "--id", str(first.id), "--yaml"])
    assert inspected.returncode == 0, inspected.describe()
    shown = yaml.safe_load(inspected.stdout)
    assert (shown["id"], shown["name"], shown["trigger"]["expect"]) == (str(first.id), "from-json", ["x.y"])

    changed = {**body, "description": "changed", "trigger": {**body["trigger"], "threshold": 2}}
    updated = run_prefect(["prefect", "automation", "update", "--id", str(first.id), "--from-json",
                           json.dumps(changed)])  # fmt: skip
    assert updated.returncode == 0, updated.describe()
    first.refresh_from_db()
    assert (first.description, first.trigger["threshold"]) == ("changed", 2)

    deleted = run_prefect(["prefect", "automation", "delete", "--id", str(first.id)])
    assert deleted.returncode == 0, deleted.describe()
    assert sorted(_rows(workspace).values_list("name", flat=True)) == ["second", "third"]
    everything = run_prefect(["prefect", "automation", "delete", "--all"])
    assert everything.returncode == 0 and "Deleted 2 automations" in everything.stdout, everything.describe()
    assert not _rows(workspace).exists()


def test_a_viewer_cannot_create_and_another_workspace_sees_nothing(run_prefect, live_tenant, asgi_server):
    refused = _create(run_prefect, "from-viewer", key=live_tenant.viewer_key)
    assert "403" in refused.result.get("error", ""), refused.describe()
    assert not _rows(live_tenant.workspace).exists()
    assert "error" not in _create(run_prefect, "mine").result
    other = make_live_tenant(asgi_server.url)
    listed = run_prefect(["prefect", "automation", "ls"], key=other.developer_key, api_url=other.api_url)
    assert listed.returncode == 0 and "mine" not in listed.stdout, listed.describe()
    inspected = run_prefect(
        ["prefect", "automation", "inspect", "mine"], key=other.developer_key, api_url=other.api_url
    )
    assert inspected.returncode != 0, inspected.describe()


def _wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_an_emitted_event_runs_the_deployment_once_and_a_paused_automation_does_not(run_prefect, live_tenant):
    workspace = live_tenant.workspace
    flow = Flow.objects.for_workspace(workspace.id).create(workspace_id=workspace.id, name="wf")
    deployment = Deployment.objects.for_workspace(workspace.id).create(
        workspace_id=workspace.id, flow=flow, name="d", enforce_parameter_schema=False
    )
    runs = FlowRun.objects.for_workspace(workspace.id).filter(deployment_id=deployment.id)

    fired = run_prefect("automation_fire.py", {"AUTOMATION_DEPLOYMENT_ID": str(deployment.id)})
    assert fired.result is not None and "error" not in fired.result, fired.describe()
    assert _wait_for(lambda: runs.exists()), fired.describe()
    (run,) = runs
    assert run.parameters == {"who": "order 42"} and run.state_type == "SCHEDULED"
    assert _wait_for(
        lambda: (
            Event.objects.for_workspace(workspace.id)
            .filter(event="prefect.automation.action.executed")
            .exists()
        )
    )
    time.sleep(1.0)
    assert runs.count() == 1  # once

    paused = run_prefect(["prefect", "automation", "pause", "on-order"])
    assert paused.returncode == 0, paused.describe()
    again = run_prefect("automation_fire.py", {"EMIT_ONLY": "1"})
    assert again.result is not None and "error" not in again.result, again.describe()
    assert _wait_for(
        lambda: Event.objects.for_workspace(workspace.id).filter(event="shop.order.placed").count() == 2
    )
    time.sleep(1.5)
    assert runs.count() == 1


def test_a_deployments_own_trigger_is_replaced_on_redeploy_and_runs_it(run_prefect, live_tenant, api_client):
    """``to_deployment(triggers=[DeploymentEventTrigger…]).apply()`` (what ``flow.serve`` and
    ``flow.deploy`` call) twice: one automation, owned by the deployment and running it; an event
    that matches it starts one run of the deployment, with parameters from the event."""
    from tests.conftest import bearer

    workspace = live_tenant.workspace
    deployed = run_prefect([str(FLOWS_DIR / "deployment_triggers.py"), "deploy", "--name", "on-orders"])
    result = deployed.result
    assert result is not None and "error" not in result, deployed.describe()
    first, second = result["deployment_ids"]
    assert first == second
    owner = f"prefect.deployment.{first}"
    (owned,) = _rows(workspace, related_resources__resource_id=owner,
                     related_resources__automation_owned_by_resource=True)  # fmt: skip
    assert _rows(workspace).count() == 1 and result["related"] == [str(owned.id)]
    assert owned.name == "on-order"
    [action] = owned.actions
    assert action["type"] == "run-deployment" and action["deployment_id"] == first
    assert owned.trigger["expect"] == ["shop.order.placed"]
    client = bearer(api_client, live_tenant.developer_key)
    listed = client.get(f"{live_tenant.prefix}/automations/owned-by/{owner}")
    assert listed.status_code == 200 and [a["id"] for a in listed.json()] == [str(owned.id)]

    runs = FlowRun.objects.for_workspace(workspace.id).filter(deployment_id=first)
    emitted = run_prefect([str(FLOWS_DIR / "deployment_triggers.py"), "emit"])
    assert emitted.result is not None and "error" not in emitted.result, emitted.describe()
    assert _wait_for(lambda: runs.exists()), emitted.describe()
    time.sleep(1.0)
    (run,) = runs
    assert run.parameters["x"] == 3


TRIGGERS_PREFECT_YAML = """\
name: triggers
prefect-version: 3.9.0
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: /opt/triggers
deployments:
  - name: on-orders
    entrypoint: live_job.py:live_job
    work_pool:
      name: triggers-pool
    triggers:
      - type: event
        enabled: true
        match:
          prefect.resource.id: shop.order.*
        expect:
          - shop.order.placed
        parameters:
          x: "{{ event.payload.quantity }}"
"""


def test_prefect_deploy_with_prefect_yaml_triggers_keeps_one_owned_automation(
    run_prefect, live_tenant, tmp_path
):
    """``prefect deploy`` twice from a ``prefect.yaml`` with ``triggers``: the CLI replaces the
    deployment's owned automations each time (``DELETE automations/owned-by/…``, then create)."""
    project = tmp_path / "triggers-project"
    project.mkdir()
    (project / "live_job.py").write_text((FLOWS_DIR / "live_job.py").read_text())
    (project / "prefect.yaml").write_text(TRIGGERS_PREFECT_YAML)
    pool = run_prefect(["prefect", "work-pool", "create", "triggers-pool", "--type", "process"])
    assert pool.returncode == 0, pool.describe()
    cli_in = str(FLOWS_DIR / "parity_cli_in.py")
    for _ in range(2):
        deployed = run_prefect([cli_in, str(project), "deploy", "-n", "on-orders"])
        assert deployed.returncode == 0, deployed.describe()
        assert "DELETE W/automations/owned-by/prefect.deployment." in deployed.trail, deployed.describe()
    deployment = Deployment.objects.for_workspace(live_tenant.workspace.id).get()
    (owned,) = _rows(live_tenant.workspace)
    assert owned.name == "on-orders__automation_1"
    related = AutomationRelatedResource.objects.for_workspace(live_tenant.workspace.id).get(automation=owned)
    assert (
        related.resource_id == f"prefect.deployment.{deployment.id}" and related.automation_owned_by_resource
    )
    assert owned.actions[0]["deployment_id"] == str(deployment.id)
