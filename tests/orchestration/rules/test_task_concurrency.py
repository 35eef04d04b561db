"""Tag concurrency of server-orchestrated task runs (Prefect's ``SecureTaskConcurrencySlots`` and
``ReleaseTaskConcurrencySlots``): each rule on its own, not firing for other transitions, then
through ``set_task_run_state`` and the ``task_runs/{id}/set_state`` route."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration.models import ConcurrencyLease, ConcurrencyLimitV2, FlowRun, TaskRun, TaskRunState
from orchestration.models.states import StateType
from orchestration.rules.base import SetStateStatus, apply_rules, normalize_proposal
from orchestration.rules.task_concurrency import ReleaseTaskConcurrencySlots, SecureTaskConcurrencySlots
from orchestration.rules.task_context import TaskOrchestrationContext
from orchestration.services import concurrency as limits
from orchestration.services.orchestration import set_flow_run_state, set_task_run_state
from tests.orchestration.rules.conftest import ALL_TRANSITIONS, proposal

pytestmark = pytest.mark.django_db

_names = iter(range(10**6))


@pytest.fixture
def make_task_run(workspace, make_flow_run):
    """``make_task_run(initial_type, tags=[...])``: a task run of a RUNNING flow run, in that state."""
    flow_run = make_flow_run(StateType.RUNNING)

    def make(initial_type: StateType | None = StateType.PENDING, *, tags=("db",)) -> TaskRun:
        run = TaskRun.objects.create(
            id=uuid.uuid4(), flow_run_id=flow_run.id, name=f"t-{next(_names)}", task_key="t", dynamic_key=str(next(_names)),
            tags=list(tags),
        )  # fmt: skip
        if initial_type is not None:
            set_task_run_state(task_run_id=run.id, state=proposal(initial_type), force=True)
        return TaskRun.objects.get(id=run.id)

    return make


def context_for(run: TaskRun, proposed_type: StateType) -> TaskOrchestrationContext:
    initial = TaskRunState.objects.filter(id=run.state_id).first() if run.state_id else None
    return TaskOrchestrationContext(
        run=run, initial_state=initial, proposed_state=normalize_proposal(proposal(proposed_type))
    )


def limit(tag: str) -> ConcurrencyLimitV2:
    return ConcurrencyLimitV2.objects.get(name=f"tag:{tag}")


def held_by(run: TaskRun) -> int:
    return ConcurrencyLease.objects.filter(metadata__holder__id=str(run.id)).count()


def propose(run: TaskRun, state_type: StateType, **kwargs):
    return set_task_run_state(task_run_id=run.id, state=proposal(state_type), **kwargs)


class TestSecureTaskConcurrencySlots:
    def test_takes_a_slot_on_every_tag_under_a_lease_held_by_the_run(self, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=2)
        limits.tag_limit_upsert(tag="api", concurrency_limit=1)
        run = make_task_run(tags=["db", "api", "untracked"])
        context = context_for(run, StateType.RUNNING)
        with SecureTaskConcurrencySlots(context, *context.intended_transition):
            pass
        assert context.response_status == SetStateStatus.ACCEPT
        assert (limit("db").active_slots, limit("api").active_slots) == (1, 1)
        assert held_by(run) == 1

    def test_a_full_limit_delays_and_takes_nothing(self, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=2)
        limits.tag_limit_upsert(tag="api", concurrency_limit=1)
        first, second = make_task_run(tags=["api"]), make_task_run(tags=["db", "api"])
        assert propose(first, StateType.RUNNING).status == SetStateStatus.ACCEPT
        context = context_for(second, StateType.RUNNING)
        with SecureTaskConcurrencySlots(context, *context.intended_transition):
            pass
        assert context.response_status == SetStateStatus.WAIT
        assert context.response_details["reason"] == "Concurrency limit reached for tags: api, db"
        # Around the fullest limit's average occupancy (2 s by default), at most the tag wait.
        assert 1 <= context.response_details["delay_seconds"] <= 3
        assert (limit("db").active_slots, limit("api").active_slots) == (0, 1)
        assert held_by(second) == 0

    def test_a_limit_of_zero_aborts(self, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=0)
        context = context_for(make_task_run(), StateType.RUNNING)
        with SecureTaskConcurrencySlots(context, *context.intended_transition):
            pass
        assert context.response_status == SetStateStatus.ABORT
        assert context.response_details["reason"] == (
            'The concurrency limit on tag "db" is 0 and will deadlock if the task tries to run again.'
        )

    def test_an_inactive_limit_does_not_count(self, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=0)
        ConcurrencyLimitV2.objects.filter(name="tag:db").update(active=False)
        context = context_for(make_task_run(), StateType.RUNNING)
        with SecureTaskConcurrencySlots(context, *context.intended_transition):
            pass
        assert context.response_status == SetStateStatus.ACCEPT and held_by(context.run) == 0

    def test_a_slot_is_given_back_when_another_rule_changes_the_transition(self, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=1)
        context = context_for(make_task_run(), StateType.RUNNING)
        with SecureTaskConcurrencySlots(context, *context.intended_transition):
            assert limit("db").active_slots == 1
            context.proposed_state = normalize_proposal(proposal(StateType.FAILED))  # fizzles the rule
        assert limit("db").active_slots == 0 and held_by(context.run) == 0

    def test_does_not_fire_for_other_transitions(self, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=0)  # would abort any transition it governs
        for initial_type, proposed_type in ALL_TRANSITIONS:
            if proposed_type == StateType.RUNNING:
                continue
            context = context_for(make_task_run(initial_type), proposed_type)
            with SecureTaskConcurrencySlots(context, *context.intended_transition):
                pass
            assert context.response_status == SetStateStatus.ACCEPT, (initial_type, proposed_type)
            assert context.rule_signature == [], (initial_type, proposed_type)

    def test_a_run_without_tags_makes_no_query(self, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=0)
        context = context_for(make_task_run(tags=()), StateType.RUNNING)
        with CaptureQueriesContext(connection) as queries:
            with SecureTaskConcurrencySlots(context, *context.intended_transition):
                pass
            with ReleaseTaskConcurrencySlots(context, *context.intended_transition):
                pass
        assert context.response_status == SetStateStatus.ACCEPT
        assert not [q for q in queries.captured_queries if "concurrency" in q["sql"]]


class TestReleaseTaskConcurrencySlots:
    @pytest.mark.parametrize(
        "final", [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    )
    def test_leaving_running_gives_the_slots_back(self, make_task_run, final):
        limits.tag_limit_upsert(tag="db", concurrency_limit=1)
        run = make_task_run()
        assert propose(run, StateType.RUNNING).status == SetStateStatus.ACCEPT
        assert limit("db").active_slots == 1
        assert propose(run, final).status == SetStateStatus.ACCEPT
        assert limit("db").active_slots == 0 and held_by(run) == 0

    @pytest.mark.parametrize("holding", [StateType.RUNNING, StateType.CANCELLING])
    def test_running_and_cancelling_keep_them(self, make_task_run, holding):
        limits.tag_limit_upsert(tag="db", concurrency_limit=1)
        run = make_task_run()
        propose(run, StateType.RUNNING)
        context = context_for(TaskRun.objects.get(id=run.id), holding)
        apply_rules(context, [ReleaseTaskConcurrencySlots])
        assert context.validated_state_type == holding
        assert held_by(run) == 1 and limit("db").active_slots == 1

    def test_a_forced_state_still_gives_them_back(self, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=1)
        run = make_task_run()
        propose(run, StateType.RUNNING)
        propose(run, StateType.COMPLETED, force=True)
        assert limit("db").active_slots == 0


class TestThroughSetState:
    def test_a_limit_of_one_runs_one_at_a_time(self, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=1)
        first, second = make_task_run(), make_task_run()
        assert propose(first, StateType.RUNNING).status == SetStateStatus.ACCEPT
        waiting = propose(second, StateType.RUNNING)
        assert waiting.status == SetStateStatus.WAIT and waiting.details["delay_seconds"] >= 1
        assert TaskRun.objects.get(id=second.id).state_type == StateType.PENDING
        propose(first, StateType.COMPLETED)
        assert propose(second, StateType.RUNNING).status == SetStateStatus.ACCEPT
        assert held_by(second) == 1 and held_by(first) == 0

    def test_the_v1_routes_see_the_slots(self, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=1)
        run = make_task_run()
        propose(run, StateType.RUNNING)
        holders = limits.lease_holders(limit_ids=[limit("db").id])
        assert [str(h) for h in holders[limit("db").id]] == [str(run.id)]

    def test_the_route_answers_wait_with_a_delay(self, tenant, dev, workspace, make_task_run):
        limits.tag_limit_upsert(tag="db", concurrency_limit=1)
        first, second = make_task_run(), make_task_run()
        propose(first, StateType.RUNNING)
        response = dev.post(
            f"{tenant.prefix}/task_runs/{second.id}/set_state", {"state": {"type": "RUNNING"}}, format="json"
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["status"] == "WAIT" and body["details"]["type"] == "wait_details"
        assert body["details"]["reason"] == "Concurrency limit reached for tags: db"
        assert body["details"]["delay_seconds"] >= 1


def test_flow_runs_are_not_governed_by_tag_limits(make_flow_run):
    limits.tag_limit_upsert(tag="flow-tag", concurrency_limit=0)
    run: FlowRun = make_flow_run(StateType.PENDING, tags=["flow-tag"])
    assert set_flow_run_state(flow_run_id=run.id, state=proposal(StateType.RUNNING)).status == (
        SetStateStatus.ACCEPT
    )
