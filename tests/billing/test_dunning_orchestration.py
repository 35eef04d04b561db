"""Dunning on Prefect's routes: during the grace period everything works; after it, orchestration
writes that start new work (a new deployment, a flow run from the API or a schedule) are refused
with a 402 in Prefect's error shape, runs already scheduled still execute, reads go on; once
suspended every orchestration write is refused; governance (the account API, billing, the audit
log) stays available in every state; paying restores at once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from billing.models import BillingStatus
from billing.selectors import ensure_new_work_allowed
from core.errors import PaymentRequired
from orchestration.models import FlowRun
from orchestration.schemas.deployments import DeploymentFlowRunCreate
from orchestration.services.deployments import deployment_flow_run_create, deployment_flow_runs_bulk_create
from orchestration.services.scheduler import scheduler_tick
from tenants.models import Account
from tenants.scoping import workspace_scope
from tests.conftest import bearer, make_tenant
from tests.orchestration.test_scheduler import DEFAULTS, _cron, _deployment
from tests.orchestration.test_work_pools import make_pool, make_run

pytestmark = pytest.mark.django_db


def _past_due(account, *, days: float) -> None:
    account.billing_status = BillingStatus.PAST_DUE
    account.billing_status_since = timezone.now() - dt.timedelta(days=days)
    account.save(update_fields=["billing_status", "billing_status_since", "updated"])


def _paid(account) -> None:
    account.billing_status = BillingStatus.ACTIVE
    account.billing_status_since = timezone.now()
    account.save(update_fields=["billing_status", "billing_status_since", "updated"])


@pytest.fixture
def setup(api_client):
    tenant = make_tenant(plan="team")
    client = bearer(api_client, tenant.member_key)
    flow = client.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()
    return tenant, client, flow


def _run(client, tenant, flow, **extra):
    return client.post(f"{tenant.prefix}/flow_runs/", {"flow_id": flow["id"], **extra}, format="json")


def _deploy(client, tenant, flow, name):
    return client.post(f"{tenant.prefix}/deployments/", {"name": name, "flow_id": flow["id"]}, format="json")


def test_grace_then_restricted_then_paid(setup):
    tenant, client, flow = setup
    existing = _run(client, tenant, flow).json()
    deployment = _deploy(client, tenant, flow, "nightly").json()

    assert "Warning" not in _run(client, tenant, flow)
    _past_due(tenant.account, days=1)  # grace: everything works, with a warning
    during_grace = _run(client, tenant, flow)
    assert during_grace.status_code == 201
    assert during_grace["Warning"].startswith('299 - "A payment failed. Everything works until')
    assert _deploy(client, tenant, flow, "grace").status_code == 201

    _past_due(tenant.account, days=8)  # restricted
    runs_before = FlowRun.objects.unscoped().count()
    refused = _run(client, tenant, flow)
    assert refused.status_code == 402
    body = refused.json()
    assert set(body) == {"detail"}  # Prefect's error shape
    assert "payment is overdue" in body["detail"] and "already scheduled still execute" in body["detail"]
    assert (
        client.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json"
        ).status_code
        == 402
    )
    assert _deploy(client, tenant, flow, "new-one").status_code == 402
    assert FlowRun.objects.unscoped().count() == runs_before
    # A run already there still moves through its states; reads go on; an existing deployment
    # can still be updated (upserted).
    state = client.post(
        f"{tenant.prefix}/flow_runs/{existing['id']}/set_state",
        {"state": {"type": "RUNNING", "name": "Running"}},
        format="json",
    )
    assert state.status_code in (200, 201) and state.json()["status"] == "ACCEPT"
    assert client.post(f"{tenant.prefix}/flow_runs/filter", {}, format="json").status_code == 200
    assert _deploy(client, tenant, flow, "nightly").status_code == 200
    # A subflow of a running run is part of work already started.
    task_run = client.post(
        f"{tenant.prefix}/task_runs/",
        {"flow_run_id": existing["id"], "task_key": "sub", "dynamic_key": "0", "name": "sub"},
        format="json",
    ).json()
    assert _run(client, tenant, flow, parent_task_run_id=task_run["id"]).status_code == 201

    _paid(tenant.account)  # paying restores at once
    assert _run(client, tenant, flow).status_code == 201
    assert _deploy(client, tenant, flow, "after").status_code == 201


def test_suspended_refuses_every_orchestration_write_but_not_reads_or_governance(setup, client):
    tenant, api, flow = setup
    existing = _run(api, tenant, flow).json()
    _past_due(tenant.account, days=30)
    state = api.post(
        f"{tenant.prefix}/flow_runs/{existing['id']}/set_state",
        {"state": {"type": "RUNNING", "name": "Running"}},
        format="json",
    )
    assert state.status_code == 402 and "suspended" in state.json()["detail"]
    assert api.post(f"{tenant.prefix}/flows/", {"name": "other"}, format="json").status_code == 402
    assert api.get(f"{tenant.prefix}/flow_runs/{existing['id']}").status_code == 200
    assert api.post(f"{tenant.prefix}/flow_runs/filter", {}, format="json").status_code == 200
    # Governance: the account API answers the member (and the billing page its Owners).
    assert api.get(f"/api/accounts/{tenant.account.id}").status_code == 200
    assert api.get("/api/me/").status_code == 200


def test_the_scheduler_skips_accounts_that_may_not_start_new_work(db):
    tenant, other = make_tenant(plan="team"), make_tenant(plan="team")
    _deployment(tenant.workspace.id, _cron("0 * * * *"))
    _deployment(other.workspace.id, _cron("0 * * * *"))
    _past_due(tenant.account, days=8)
    now = timezone.now()
    created = scheduler_tick(now=now, config=DEFAULTS)
    assert created > 0
    with workspace_scope(tenant.workspace.id):
        assert not FlowRun.objects.exists()
    with workspace_scope(other.workspace.id):
        assert FlowRun.objects.count() == created
    _paid(tenant.account)
    assert scheduler_tick(now=now, config=DEFAULTS) == created
    with workspace_scope(tenant.workspace.id):
        assert FlowRun.objects.count() == created


def test_the_check_reads_no_database(setup, django_assert_max_num_queries):
    tenant, _, _ = setup
    account = Account.objects.get(pk=tenant.account.pk)
    with django_assert_max_num_queries(0):
        ensure_new_work_allowed(account)


def test_a_deployment_run_from_any_door_is_refused_while_restricted(setup):
    """The service refuses, not only the route: an automation's run-deployment action goes through
    ``deployment_flow_run_create`` without the API's view."""
    tenant, client, flow = setup
    deployment = _deploy(client, tenant, flow, "nightly").json()
    _past_due(tenant.account, days=8)
    with workspace_scope(tenant.workspace.id):
        for create in (
            lambda: deployment_flow_run_create(
                deployment_id=deployment["id"], data=DeploymentFlowRunCreate.model_validate({})
            ),
            lambda: deployment_flow_runs_bulk_create(
                deployment_id=deployment["id"], items=[DeploymentFlowRunCreate.model_validate({})]
            ),
        ):
            with pytest.raises(PaymentRequired, match="payment is overdue"):
                create()
        assert not FlowRun.objects.exists()
    _paid(tenant.account)
    with workspace_scope(tenant.workspace.id):
        run, created = deployment_flow_run_create(
            deployment_id=deployment["id"], data=DeploymentFlowRunCreate.model_validate({})
        )
        assert created and FlowRun.objects.get().id == run.id


def test_a_workers_poll_still_hands_out_runs_already_scheduled_while_restricted(api_client):
    """Runs already scheduled still execute while restricted (Prefect's side: a worker polls, takes
    the run and moves it to PENDING, RUNNING, …), so the poll answers them as before, with the
    warning; only new work is refused. Once suspended the poll is refused with the reason."""
    tenant = make_tenant(plan="team")
    worker = bearer(api_client, tenant.service_key)
    pool = make_pool(worker, tenant)
    due = make_run(tenant, pool["default_queue_id"], when=timezone.now() - dt.timedelta(seconds=5))
    poll_url = f"{tenant.prefix}/work_pools/proc-pool/get_scheduled_flow_runs"

    _past_due(tenant.account, days=8)
    polled = worker.post(poll_url, {}, format="json")
    assert polled.status_code == 200, polled.content
    assert [entry["flow_run"]["id"] for entry in polled.json()] == [str(due)]
    assert "payment is overdue" in polled["Warning"]
    taken = worker.post(
        f"{tenant.prefix}/flow_runs/{due}/set_state",
        {"state": {"type": "PENDING", "name": "Pending"}},
        format="json",
    )
    assert taken.status_code in (200, 201) and taken.json()["status"] == "ACCEPT"
    # New work stays refused meanwhile.
    flow = worker.post(f"{tenant.prefix}/flows/", {"name": "other"}, format="json").json()
    assert _run(worker, tenant, flow).status_code == 402

    _past_due(tenant.account, days=30)
    refused = worker.post(poll_url, {}, format="json")
    assert refused.status_code == 402 and "suspended" in refused.json()["detail"]
