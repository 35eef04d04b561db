"""Deleting a run that holds its deployment's concurrency slot gives the slot back (Prefect's
``cleanup_flow_run_concurrency_slots``); a run that holds none gives nothing back."""

from __future__ import annotations

import pytest

from orchestration.models import ConcurrencyLease
from orchestration.models.states import StateType
from orchestration.schemas.responses import SetStateStatus
from orchestration.services.flow_runs import flow_run_delete, flow_runs_delete
from tests.orchestration.rules.conftest import flow, make_flow_run, recorded_events, workspace  # noqa: F401
from tests.orchestration.rules.test_concurrency import lease_of, make_deployment, propose, slots  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("holding", [StateType.PENDING, StateType.RUNNING])
def test_deleting_a_run_that_holds_a_slot_releases_it(make_flow_run, make_deployment, holding):  # noqa: F811
    deployment = make_deployment(1)
    run = make_flow_run(StateType.SCHEDULED, deployment_id=deployment.id)
    taken = propose(run, StateType.PENDING)
    if holding == StateType.RUNNING:
        taken = propose(run, StateType.RUNNING)
    assert taken.status == SetStateStatus.ACCEPT and slots(deployment) == 1
    lease_id = lease_of(taken.state)

    flow_run_delete(flow_run_id=run.id)
    assert slots(deployment) == 0
    assert not ConcurrencyLease.objects.filter(id=lease_id).exists()
    # The slot is free for the next run.
    second = make_flow_run(StateType.SCHEDULED, deployment_id=deployment.id)
    assert propose(second, StateType.PENDING).status == SetStateStatus.ACCEPT


def test_deleting_runs_that_hold_no_slot_leaves_the_limit_alone(make_flow_run, make_deployment):  # noqa: F811
    deployment = make_deployment(2)
    holder = make_flow_run(StateType.SCHEDULED, deployment_id=deployment.id)
    propose(holder, StateType.PENDING)
    waiting = make_flow_run(StateType.SCHEDULED, deployment_id=deployment.id)
    assert flow_runs_delete(flow_run_ids=[waiting.id]) == [waiting.id]
    assert slots(deployment) == 1
