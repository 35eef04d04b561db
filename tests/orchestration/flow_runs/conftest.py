"""Helpers for the flow-run route tests: one API client per key (``tests.conftest.bearer`` sets
credentials on the client it is given, so two roles must not share one)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.api_keys.services import api_key_create
from accounts.services import workspace_access_grant
from audit.actors import SYSTEM
from orchestration.models import TaskRun, TaskRunState
from tests.conftest import bearer
from tests.factories import ServiceAccountFactory


@pytest.fixture
def dev(tenant):
    return bearer(APIClient(), tenant.service_key)


@pytest.fixture
def as_role(tenant):
    def make(role: str) -> APIClient:
        robot = ServiceAccountFactory(account=tenant.account)
        workspace_access_grant(workspace=tenant.workspace, principal=robot, role=role, actor=SYSTEM)
        _, key = api_key_create(owner=robot, name=role, actor=SYSTEM)
        return bearer(APIClient(), key)

    return make


@pytest.fixture
def other(two_workspaces):
    """A client of another workspace, and that workspace's tenant."""
    _, b = two_workspaces
    return bearer(APIClient(), b.service_key), b


class Api:
    def __init__(self, client: APIClient, prefix: str):
        self.client, self.prefix = client, prefix

    def post(self, path: str, body=None):
        return self.client.post(f"{self.prefix}/{path}", body if body is not None else {}, format="json")

    def get(self, path: str, **params):
        return self.client.get(f"{self.prefix}/{path}", params)

    def delete(self, path: str):
        return self.client.delete(f"{self.prefix}/{path}")

    def flow(self, name: str = "etl") -> str:
        return self.post("flows/", {"name": name}).json()["id"]

    def run(self, flow_id: str | None = None, **extra) -> dict:
        response = self.post("flow_runs/", {"flow_id": flow_id or self.flow(), **extra})
        assert response.status_code in (200, 201), response.content
        return response.json()

    def set_state(
        self, run_id: str, state_type: str, name: str | None = None, force: bool = False, **details
    ):
        state = {"type": state_type, "name": name, "state_details": details}
        return self.post(f"flow_runs/{run_id}/set_state", {"state": state, "force": force})

    def pause(
        self, run_id: str, *, key: str = "k1", timeout_seconds: float = 300, with_input: bool = True, **extra
    ):
        details = {
            "pause_key": key,
            "pause_timeout": (timezone.now() + dt.timedelta(seconds=timeout_seconds)).isoformat(),
            **extra,
        }
        if with_input:
            details["run_input_keyset"] = keyset(key)
        return self.set_state(run_id, "PAUSED", "Paused", **details)


def keyset(key: str) -> dict[str, str]:
    base = f"paused-{key}"
    return {"description": f"{base}-description", "response": f"{base}-response", "schema": f"{base}-schema"}


@pytest.fixture
def api(dev, tenant) -> Api:
    return Api(dev, tenant.prefix)


def make_task_run(workspace, flow_run_id, *, name: str, task_inputs=None, state_type: str = "COMPLETED",
                  start: dt.datetime | None = None, end: dt.datetime | None = None) -> TaskRun:  # fmt: skip
    start = start or timezone.now()
    task_run = TaskRun.objects.for_workspace(workspace.id).create(
        id=uuid.uuid4(), workspace=workspace, flow_run_id=flow_run_id, name=name, task_key=name, dynamic_key="0",
        task_inputs=task_inputs or {}, state_type=state_type, state_name=state_type.capitalize(),
        expected_start_time=start, start_time=start, end_time=end,
    )  # fmt: skip
    state = TaskRunState.objects.for_workspace(workspace.id).create(
        id=uuid.uuid4(), workspace=workspace, task_run=task_run, type=state_type, name=state_type.capitalize(),
        timestamp=start, state_details={"task_run_id": str(task_run.id)},
    )  # fmt: skip
    task_run.state_id = state.id
    task_run.save(update_fields=["state_id"])
    return task_run
