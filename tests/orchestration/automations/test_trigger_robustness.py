"""The trigger engine keeps going when something fails: one workspace's proactive triggers cannot
stop the others', no window's arithmetic overflows (a stored automation with a huge ``within``, an
event dated year 1 or 9999), and a batch whose evaluation failed is evaluated again by a task (once,
however often the task runs). What the API refuses up front (a ``within`` past ``MAX_WITHIN``) is in
``test_api_automations.py``."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from contextlib import contextmanager

import pytest
from celery.exceptions import Retry
from django.db import OperationalError
from django.utils import timezone
from rest_framework.test import APIClient

from orchestration import tasks
from orchestration.models import Automation, AutomationBucket, AutomationDeferredEvaluation
from orchestration.services import triggers
from tests.conftest import bearer
from tests.orchestration.automations.engine import action_runs, automation, clock, emit, event, firings

pytestmark = pytest.mark.django_db

FAILED = "prefect.flow-run.Failed"


def _bucket(tenant, auto):
    return AutomationBucket.objects.for_workspace(tenant.workspace.id).get(automation_id=auto)


# --- proactive triggers: one workspace cannot stop the others --------------------------------------


def _stored_automation(tenant, *, within: float) -> Automation:
    """An automation written straight to the table, as one stored before ``within`` was bounded."""
    trigger = {"type": "event", "id": str(uuid.uuid4()), "match": {}, "match_related": {}, "after": [],
               "expect": [FAILED], "for_each": [], "posture": "Proactive", "threshold": 1, "within": within}  # fmt: skip
    return Automation.objects.unscoped().create(
        workspace_id=tenant.workspace.id, name="old", trigger=trigger, actions=[{"type": "do-nothing"}]
    )


def test_a_stored_huge_within_does_not_stop_other_workspaces(
    two_workspaces, django_capture_on_commit_callbacks
):
    odd, other = two_workspaces
    huge = _stored_automation(odd, within=2e13)
    auto = automation(
        bearer(APIClient(), other.service_key), other, posture="Proactive", expect=[FAILED], within=10
    )
    capture = django_capture_on_commit_callbacks
    clock(capture, seconds=0)  # both windows open
    assert clock(capture, seconds=11) == 1
    assert len(firings(other, auto)) == 1
    # The huge window is held at the last moment a datetime holds, and never ends.
    assert _bucket(odd, huge.id).end.year == 9999
    assert firings(odd, huge.id) == []


def test_one_workspace_failing_does_not_stop_the_others_clocks(
    two_workspaces, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    broken, other = two_workspaces
    automation(
        bearer(APIClient(), broken.service_key), broken, posture="Proactive", expect=[FAILED], within=10
    )
    auto = automation(
        bearer(APIClient(), other.service_key), other, posture="Proactive", expect=[FAILED], within=10
    )
    real = triggers._proactive_workspace

    def failing(workspace_id, proactive, now):
        if workspace_id == broken.workspace.id:
            raise OperationalError("canceling statement due to statement timeout")
        return real(workspace_id, proactive, now)

    monkeypatch.setattr(triggers, "_proactive_workspace", failing)
    capture = django_capture_on_commit_callbacks
    with caplog.at_level(logging.ERROR):
        clock(capture, seconds=0)
        assert clock(capture, seconds=11) == 1
    assert len(firings(other, auto)) == 1
    assert f"Workspace {broken.workspace.id}: proactive evaluation failed" in caplog.text


def test_events_at_the_ends_of_time_are_evaluated(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    auto = automation(dev, tenant, expect=[FAILED], threshold=2, within=366 * 86400)
    proactive = automation(dev, tenant, name="p", posture="Proactive", after=["prefect.flow-run.Running"],
                           expect=[FAILED], within=366 * 86400, for_each=["prefect.resource.id"])  # fmt: skip
    last = {**event(FAILED), "occurred": "9999-12-31T23:59:59+00:00"}
    first = {**event(FAILED), "occurred": "0001-01-01T00:00:01+00:00"}
    emit(capture, tenant, {**event("prefect.flow-run.Running"), "occurred": "9999-12-31T00:00:00+00:00"})
    emit(capture, tenant, last)
    emit(capture, tenant, first)
    emit(capture, tenant, event(FAILED))
    # Each far event opened a window of its own (held at the ends of time) and counted there.
    assert firings(tenant, auto) == []
    assert firings(tenant, proactive) == []
    assert clock(capture, seconds=60) == 0


def test_held_expect_events_of_a_stored_huge_within_do_not_overflow(
    tenant, django_capture_on_commit_callbacks
):
    """A proactive `after` trigger stored with a `within` past a datetime's range holds its events
    (the slot and retention arithmetic are held at the ends of time)."""
    row = _stored_automation(tenant, within=8e13)
    row.trigger = {**row.trigger, "after": ["prefect.flow-run.Running"], "for_each": ["prefect.resource.id"]}
    row.save()
    capture = django_capture_on_commit_callbacks
    emit(capture, tenant, {**event(FAILED), "occurred": "1960-01-01T00:00:00+00:00"})
    emit(capture, tenant, event(FAILED, seconds=1), event("prefect.flow-run.Running", seconds=2))
    assert clock(capture, seconds=3600) == 0
    assert firings(tenant, row.id) == []


@pytest.fixture
def fail_evaluation(monkeypatch):
    """Make the evaluation of an event raise the next ``times`` times (a database hiccup); returns
    the calls made to the inner function."""
    calls = []
    real = triggers._evaluate_event

    def arm(times: int):
        def flaky(*args, **kwargs):
            calls.append(args[3].id)
            if len(calls) <= times:
                raise OperationalError("server closed the connection unexpectedly")
            return real(*args, **kwargs)

        monkeypatch.setattr(triggers, "_evaluate_event", flaky)
        return calls

    return arm


@pytest.fixture
def deferred(monkeypatch):
    """Deferred evaluations held back instead of sent (the task is then run by hand)."""
    sent = []
    monkeypatch.setattr(triggers, "_evaluation_dispatch", [lambda *args: sent.append(args)])
    return sent


def _run_task(workspace_id, event_ids, depth, evaluation_id) -> int:
    args = (str(workspace_id), [str(i) for i in event_ids], depth, str(evaluation_id))
    return tasks.evaluate_stored_events.apply(args=args).get()


# --- a failed evaluation, deferred to a task -------------------------------------------------------


def test_a_failed_evaluation_is_evaluated_by_the_task_and_fires_once(
    tenant, dev, fail_evaluation, django_capture_on_commit_callbacks
):
    auto = automation(dev, tenant, expect=[FAILED])
    calls = fail_evaluation(times=1)
    failed = event(FAILED)
    # The listener's evaluation raises; the task (eager in tests) evaluates the batch again.
    emit(django_capture_on_commit_callbacks, tenant, failed)
    assert calls == [uuid.UUID(failed["id"])] * 2
    (firing,) = firings(tenant, auto)
    assert firing.triggering_event["id"] == failed["id"]
    assert [r.state for r in action_runs(tenant)] == ["executed"]
    assert AutomationDeferredEvaluation.objects.for_workspace(tenant.workspace.id).count() == 1


def test_a_deferred_batch_counts_once_toward_a_threshold(
    tenant, dev, fail_evaluation, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    auto = automation(dev, tenant, expect=[FAILED], threshold=2, within=60)
    fail_evaluation(times=1)
    emit(capture, tenant, event(FAILED, seconds=0))
    assert firings(tenant, auto) == [] and _bucket(tenant, auto).count == 1
    second = event(FAILED, seconds=10)
    emit(capture, tenant, second)
    (firing,) = firings(tenant, auto)
    assert firing.triggering_event["id"] == second["id"]


def test_the_task_run_by_hand_and_delivered_twice_counts_the_batch_once(
    tenant, dev, fail_evaluation, deferred, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    auto = automation(dev, tenant, expect=[FAILED], threshold=2, within=60)
    fail_evaluation(times=1)
    first = event(FAILED, seconds=0)
    emit(capture, tenant, first)
    ((workspace_id, event_ids, depth, evaluation_id),) = deferred
    assert (workspace_id, event_ids, depth) == (tenant.workspace.id, [uuid.UUID(first["id"])], 0)
    assert not AutomationBucket.objects.for_workspace(tenant.workspace.id).exists()  # rolled back

    with capture(execute=True):
        _run_task(workspace_id, event_ids, depth, evaluation_id)
        # Delivered again (its worker lost after the commit): it counts nothing twice.
        _run_task(workspace_id, event_ids, depth, evaluation_id)
    assert _bucket(tenant, auto).count == 1 and firings(tenant, auto) == []

    emit(capture, tenant, event(FAILED, seconds=10))
    assert len(firings(tenant, auto)) == 1


def test_a_batch_that_keeps_failing_is_retried_then_logged_after_the_last_attempt(
    tenant, dev, fail_evaluation, deferred, caplog, django_capture_on_commit_callbacks
):
    auto = automation(dev, tenant, expect=[FAILED])
    calls = fail_evaluation(times=100)
    with caplog.at_level(logging.WARNING):
        emit(django_capture_on_commit_callbacks, tenant, event(FAILED))  # nothing escapes the store
    assert "deferred to a task" in caplog.text
    ((workspace_id, event_ids, depth, evaluation_id),) = deferred
    args = (str(workspace_id), [str(i) for i in event_ids], depth, str(evaluation_id))
    with pytest.raises(Retry):  # scheduled again (eager tasks raise it)
        tasks.evaluate_stored_events.apply(args=args, retries=0)
    last = tasks.STORED_EVENTS_EVALUATION_ATTEMPTS - 1
    with caplog.at_level(logging.ERROR):
        assert tasks.evaluate_stored_events.apply(args=args, retries=last).get() == 0
    assert len(calls) == 3
    assert f"not evaluated by the automations after {tasks.STORED_EVENTS_EVALUATION_ATTEMPTS} attempts" in (
        caplog.text
    )
    assert firings(tenant, auto) == []


def test_a_deferred_evaluation_reads_only_its_own_workspace(
    two_workspaces, django_capture_on_commit_callbacks
):
    mine, theirs = two_workspaces
    mine_auto = automation(bearer(APIClient(), mine.service_key), mine, expect=[FAILED])
    theirs_auto = automation(bearer(APIClient(), theirs.service_key), theirs, expect=[FAILED])
    stored = event(FAILED)
    with triggers_unhooked():
        emit(django_capture_on_commit_callbacks, theirs, stored)
    fired = triggers.stored_events_evaluate(
        workspace_id=mine.workspace.id,
        event_ids=[uuid.UUID(stored["id"])],
        depth=0,
        evaluation_id=uuid.uuid4(),
    )
    assert fired == 0
    assert firings(mine, mine_auto) == [] and firings(theirs, theirs_auto) == []


def test_a_deferred_evaluation_keeps_its_chain_depth(
    tenant, dev, deferred, django_capture_on_commit_callbacks
):
    auto = automation(dev, tenant, expect=[FAILED])
    stored = event(FAILED)
    with triggers_unhooked():
        emit(django_capture_on_commit_callbacks, tenant, stored)
    ids = [uuid.UUID(stored["id"])]
    # Stored by a chain of firings already at its limit: not evaluated, as it would not have been.
    assert _run_task(tenant.workspace.id, ids, triggers.MAX_DEPTH, uuid.uuid4()) == 0
    assert triggers._depth.get() == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert _run_task(tenant.workspace.id, ids, 0, uuid.uuid4()) == 1
    assert len(firings(tenant, auto)) == 1


def test_deferred_evaluations_are_swept_long_after_any_redelivery(tenant):
    done = AutomationDeferredEvaluation.objects.unscoped()
    old, recent = uuid.uuid4(), uuid.uuid4()
    for evaluation_id in (old, recent):
        done.create(id=evaluation_id, workspace_id=tenant.workspace.id)
    now = timezone.now()
    done.filter(id=old).update(created=now - triggers.DEFERRED_EVALUATION_RETENTION - dt.timedelta(minutes=1))
    triggers.automation_buckets_sweep(now=now)
    assert list(done.values_list("id", flat=True)) == [recent]


def test_a_failure_while_committing_is_not_evaluated_again(
    tenant, dev, deferred, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    auto = automation(dev, tenant, expect=[FAILED])
    real = triggers._collecting_firings

    @contextmanager
    def lost_at_commit(workspace_id):
        with real(workspace_id) as collected:
            yield collected
        raise OperationalError("connection lost during COMMIT")

    monkeypatch.setattr(triggers, "_collecting_firings", lost_at_commit)
    with caplog.at_level(logging.WARNING):
        emit(django_capture_on_commit_callbacks, tenant, event(FAILED))
    # It may have committed: evaluating it again could count it twice.
    assert deferred == []
    assert "failed while committing" in caplog.text
    assert firings(tenant, auto) == []


@contextmanager
def triggers_unhooked():
    """Events stored without the engine seeing them (as if their evaluation had been lost)."""
    from orchestration.events import services

    listeners = services._stored_listeners[:]
    services._stored_listeners.clear()
    try:
        yield
    finally:
        services._stored_listeners[:] = listeners
