"""An automation does only what its author may do: creating, replacing or re-enabling one needs,
besides ``manage_automations``, the scope of each of its actions (the scope of the API route that
does the same by hand), else 403 naming it, and nothing is written."""

from __future__ import annotations

import typing
import uuid

import pytest
from prefect.server.events import actions as prefect_actions
from rest_framework.test import APIClient

from accounts.api_keys.services import api_key_create
from accounts.permissions import SCOPES_BY_NAME, WORKSPACE_ROLE_SCOPES
from accounts.rbac import custom_role_create
from accounts.roles import ResolvedRole
from accounts.services import workspace_access_grant
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from orchestration.api.automations.views import AutomationDetailApi
from orchestration.api.deployments.views import (
    DeploymentCreateFlowRunApi,
    DeploymentPauseApi,
    DeploymentResumeApi,
)
from orchestration.api.flow_runs.views import FlowRunDetailApi, FlowRunResumeApi, FlowRunSetStateApi
from orchestration.api.work_pools.views import WorkPoolDetailApi, WorkQueueDetailApi
from orchestration.models import Automation, Event
from orchestration.schemas import automations as schema
from orchestration.schemas.automations import AutomationPartialUpdate
from orchestration.services.automations import ACTION_SCOPES, automation_patch
from tenants.scoping import workspace_scope
from tests.conftest import bearer
from tests.factories import ServiceAccountFactory
from tests.orchestration.automations.test_api_automations import _deployment, body, rows
from tests.orchestration.automations.test_outbound_actions import _block

pytestmark = pytest.mark.django_db

# The route each action does by hand, and its method.
ROUTES = {
    "run-deployment": (DeploymentCreateFlowRunApi, "POST"),
    "pause-deployment": (DeploymentPauseApi, "POST"),
    "resume-deployment": (DeploymentResumeApi, "POST"),
    "cancel-flow-run": (FlowRunSetStateApi, "POST"),
    "change-flow-run-state": (FlowRunSetStateApi, "POST"),
    "suspend-flow-run": (FlowRunSetStateApi, "POST"),
    "resume-flow-run": (FlowRunResumeApi, "POST"),
    "delete-flow-run": (FlowRunDetailApi, "DELETE"),
    "pause-work-queue": (WorkQueueDetailApi, "PATCH"),
    "resume-work-queue": (WorkQueueDetailApi, "PATCH"),
    "pause-work-pool": (WorkPoolDetailApi, "PATCH"),
    "resume-work-pool": (WorkPoolDetailApi, "PATCH"),
    "pause-automation": (AutomationDetailApi, "PATCH"),
    "resume-automation": (AutomationDetailApi, "PATCH"),
}


def _types(union) -> set[str]:
    if typing.get_origin(union) is typing.Annotated:  # ours carries a validator beside the union
        union = typing.get_args(union)[0]
    return {typing.get_args(member.model_fields["type"].annotation)[0] for member in typing.get_args(union)}


class TestTheTable:
    def test_every_action_type_has_a_scope_and_no_other(self):
        assert set(ACTION_SCOPES) == _types(schema.Action) == _types(prefect_actions.ServerActionTypes)
        assert {scope for scope in ACTION_SCOPES.values() if scope} <= set(SCOPES_BY_NAME)

    @pytest.mark.parametrize("kind", sorted(ROUTES))
    def test_each_scope_is_that_of_the_route_doing_it_by_hand(self, kind):
        view, method = ROUTES[kind]
        assert ACTION_SCOPES[kind] == view.declared_requirement(method)

    def test_notifications_and_webhooks_need_to_read_their_blocks_secrets(self):
        assert ACTION_SCOPES["send-notification"] == ACTION_SCOPES["call-webhook"] == "see_secret_blocks"
        assert ACTION_SCOPES["do-nothing"] is None

    @pytest.mark.parametrize(
        "role", [role for role, scopes in WORKSPACE_ROLE_SCOPES.items() if "manage_automations" in scopes]
    )
    def test_built_in_roles_that_manage_automations_may_use_every_action(self, role):
        assert {scope for scope in ACTION_SCOPES.values() if scope} <= WORKSPACE_ROLE_SCOPES[role]


@pytest.fixture
def custom_client(tenant):
    """``custom_client(["manage_automations", …])``: a new client holding the key of a service
    account with a custom role of exactly those scopes."""

    def make(scopes: list[str]):
        name = f"role-{uuid.uuid4().hex[:8]}"
        role = custom_role_create(account=tenant.account, name=name, scopes=scopes, actor=SYSTEM)
        robot = ServiceAccountFactory(account=tenant.account)
        workspace_access_grant(
            workspace=tenant.workspace, principal=robot, role=ResolvedRole(custom=role), actor=SYSTEM
        )
        _, key = api_key_create(owner=robot, name="custom", actor=SYSTEM)
        return bearer(APIClient(), key)

    return make


def _automation_traces(tenant) -> tuple:
    return (
        list(
            AuditLogEntry.objects.filter(api_name__startswith="automation.").values_list(
                "api_name", flat=True
            )
        ),
        list(
            Event.objects.for_workspace(tenant.workspace.id)
            .filter(event__startswith="prefect.automation.")
            .values_list("event", flat=True)
        ),
    )


def _run(deployment) -> dict:
    return {"type": "run-deployment", "deployment_id": str(deployment.id)}


class TestCreate:
    def test_manage_automations_alone_cannot_run_a_deployment(self, tenant, custom_client):
        deployment = _deployment(tenant)
        client = custom_client(["manage_automations", "see_deployments"])
        answer = client.post(f"{tenant.prefix}/automations/", body(actions=[_run(deployment)]), format="json")
        assert answer.status_code == 403
        assert answer.json() == {
            "detail": "Missing the scope 'run_deployments' in this workspace, which this automation's "
            "run-deployment action needs."
        }
        assert not rows(tenant).exists()
        assert _automation_traces(tenant) == ([], [])

    def test_but_may_create_one_that_does_nothing(self, tenant, custom_client):
        client = custom_client(["manage_automations"])
        answer = client.post(f"{tenant.prefix}/automations/", body(), format="json")
        assert answer.status_code == 201, answer.content
        assert rows(tenant).get().actions == [{"type": "do-nothing"}]

    def test_with_the_runs_scope_it_may(self, tenant, custom_client):
        deployment = _deployment(tenant)
        client = custom_client(["manage_automations", "run_deployments"])
        answer = client.post(f"{tenant.prefix}/automations/", body(actions=[_run(deployment)]), format="json")
        assert answer.status_code == 201, answer.content

    @pytest.mark.parametrize("field", ["actions_on_trigger", "actions_on_resolve"])
    def test_every_list_of_actions_counts(self, tenant, custom_client, field):
        client = custom_client(["manage_automations"])
        answer = client.post(
            f"{tenant.prefix}/automations/", body(**{field: [{"type": "cancel-flow-run"}]}), format="json"
        )
        assert answer.status_code == 403 and "'run_flows'" in answer.json()["detail"]
        assert not rows(tenant).exists()

    def test_a_notification_needs_to_read_the_blocks_secrets(self, tenant, dev, custom_client):
        block = _block(dev, tenant, "webhook", {"url": "https://example.test/hook", "method": "POST"})
        action = {"type": "call-webhook", "block_document_id": block}
        client = custom_client(["manage_automations", "see_blocks"])
        answer = client.post(f"{tenant.prefix}/automations/", body(actions=[action]), format="json")
        assert answer.status_code == 403 and "'see_secret_blocks'" in answer.json()["detail"]
        reader = custom_client(["manage_automations", "see_secret_blocks"])
        assert (
            reader.post(f"{tenant.prefix}/automations/", body(actions=[action]), format="json").status_code
            == 201
        )

    def test_a_scoped_down_key_counts_its_own_scopes(self, tenant, api_client):
        deployment = _deployment(tenant)
        _, key = api_key_create(
            owner=tenant.service_account, name="narrow", actor=SYSTEM, scopes=["manage_automations"]
        )
        client = bearer(api_client, key)
        answer = client.post(f"{tenant.prefix}/automations/", body(actions=[_run(deployment)]), format="json")
        assert answer.status_code == 403 and not rows(tenant).exists()

    def test_a_developer_may_use_every_action(self, tenant, dev):
        deployment = _deployment(tenant)
        block = _block(dev, tenant, "webhook", {"url": "https://example.test/hook", "method": "POST"})
        inferred = (
            "pause-deployment",
            "resume-deployment",
            "pause-work-queue",
            "resume-work-queue",
            "pause-work-pool",
            "resume-work-pool",
            "pause-automation",
            "resume-automation",
        )
        flow_runs = ("cancel-flow-run", "delete-flow-run", "suspend-flow-run", "resume-flow-run")
        actions = [
            {"type": "do-nothing"},
            _run(deployment),
            *({"type": kind, "source": "inferred"} for kind in inferred),
            *({"type": kind} for kind in flow_runs),
            {"type": "change-flow-run-state", "state": "CANCELLED"},
            {"type": "send-notification", "block_document_id": block, "body": "hi"},
            {"type": "call-webhook", "block_document_id": block},
        ]  # fmt: skip
        assert {a["type"] for a in actions} == set(ACTION_SCOPES)
        answer = dev.post(f"{tenant.prefix}/automations/", body(actions=actions), format="json")
        assert answer.status_code == 201, answer.content


class TestUpdate:
    def _owned_by_developer(self, tenant, dev, **overrides) -> str:
        answer = dev.post(f"{tenant.prefix}/automations/", body(**overrides), format="json")
        assert answer.status_code == 201, answer.content
        return f"{tenant.prefix}/automations/{answer.json()['id']}"

    def test_adding_a_forbidden_action_is_refused_and_changes_nothing(self, tenant, dev, custom_client):
        deployment = _deployment(tenant)
        url = self._owned_by_developer(tenant, dev)
        before = dev.get(url).json()
        traces = _automation_traces(tenant)
        client = custom_client(["manage_automations"])
        replaced = body(name="renamed", actions=[{"type": "do-nothing"}, _run(deployment)])
        answer = client.put(url, replaced, format="json")
        assert answer.status_code == 403 and "'run_deployments'" in answer.json()["detail"]
        assert dev.get(url).json() == before
        assert _automation_traces(tenant) == traces
        assert client.put(url, body(name="renamed"), format="json").status_code == 204
        assert dev.get(url).json()["name"] == "renamed"

    def test_actions_a_put_leaves_in_place_count(self, tenant, dev, custom_client):
        url = self._owned_by_developer(tenant, dev, actions_on_resolve=[{"type": "delete-flow-run"}])
        client = custom_client(["manage_automations"])
        answer = client.put(url, body(name="renamed"), format="json")  # actions_on_resolve unset: kept
        assert answer.status_code == 403 and "'manage_flows'" in answer.json()["detail"]
        assert dev.get(url).json()["name"] == "auto"
        emptied = body(name="renamed", actions_on_resolve=[])
        assert client.put(url, emptied, format="json").status_code == 204

    def test_re_enabling_needs_the_actions_scopes_pausing_does_not(self, tenant, dev, custom_client):
        deployment = _deployment(tenant)
        url = self._owned_by_developer(tenant, dev, actions=[_run(deployment)])
        client = custom_client(["manage_automations"])
        assert client.patch(url, {"enabled": False}, format="json").status_code == 204
        traces = _automation_traces(tenant)
        answer = client.patch(url, {"enabled": True}, format="json")
        assert answer.status_code == 403 and "'run_deployments'" in answer.json()["detail"]
        assert dev.get(url).json()["enabled"] is False
        assert _automation_traces(tenant) == traces
        assert dev.patch(url, {"enabled": True}, format="json").status_code == 204
        # Already enabled: nothing is re-enabled, nothing to check.
        assert client.patch(url, {"enabled": True}, format="json").status_code == 204
        assert client.delete(url).status_code == 204


class TestResumeAutomation:
    def test_resuming_another_automation_needs_what_it_needs(self, tenant, dev, custom_client):
        deployment = _deployment(tenant)
        target = dev.post(
            f"{tenant.prefix}/automations/",
            body("runs", enabled=False, actions=[_run(deployment)]),
            format="json",
        ).json()
        resume = {"type": "resume-automation", "automation_id": target["id"]}
        client = custom_client(["manage_automations"])
        answer = client.post(
            f"{tenant.prefix}/automations/", body("resumer", actions=[resume]), format="json"
        )
        assert answer.status_code == 403
        assert answer.json()["detail"] == (
            "Missing the scope 'run_deployments' in this workspace, which this automation's "
            "resume-automation action needs."
        )
        # Through a chain of resumes too.
        relay = dev.post(
            f"{tenant.prefix}/automations/", body("relay", enabled=False, actions=[resume]), format="json"
        ).json()
        chained = {"type": "resume-automation", "automation_id": relay["id"]}
        answer = client.post(
            f"{tenant.prefix}/automations/", body("chained", actions=[chained]), format="json"
        )
        assert answer.status_code == 403 and "'run_deployments'" in answer.json()["detail"]
        # One that resumes only what does nothing is fine; so is pausing anything.
        idle = dev.post(f"{tenant.prefix}/automations/", body("idle", enabled=False), format="json").json()
        for action in (
            {"type": "resume-automation", "automation_id": idle["id"]},
            {"type": "pause-automation", "automation_id": target["id"]},
        ):
            answer = client.post(f"{tenant.prefix}/automations/", body("ok", actions=[action]), format="json")
            assert answer.status_code == 201, answer.content
        assert set(rows(tenant).values_list("name", flat=True)) == {"runs", "relay", "idle", "ok"}

    def test_an_inferred_resume_needs_every_actions_scope(self, tenant, custom_client):
        resume = {"type": "resume-automation", "source": "inferred"}
        client = custom_client(["manage_automations", "run_deployments"])
        answer = client.post(f"{tenant.prefix}/automations/", body(actions=[resume]), format="json")
        assert answer.status_code == 403 and not rows(tenant).exists()
        every = sorted({scope for scope in ACTION_SCOPES.values() if scope})
        assert (
            custom_client(every)
            .post(f"{tenant.prefix}/automations/", body(actions=[resume]), format="json")
            .status_code
            == 201
        )

    def test_the_server_resuming_an_automation_is_not_checked(self, tenant, dev):
        deployment = _deployment(tenant)
        created = dev.post(
            f"{tenant.prefix}/automations/", body(enabled=False, actions=[_run(deployment)]), format="json"
        ).json()
        with workspace_scope(tenant.workspace.id):
            automation_patch(automation_id=created["id"], data=AutomationPartialUpdate(enabled=True))
            assert Automation.objects.get(id=created["id"]).enabled is True
