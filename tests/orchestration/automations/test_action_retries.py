"""An action that fails with a reason is recorded and announced once, never retried (Prefect's
``ActionFailed``); one that raises anything else leaves no trace and is tried again, as Prefect's
actions consumer leaves its message to be delivered again, and is recorded as failed on the
last attempt. Either way an action runs at most once per firing."""

from __future__ import annotations

import pytest
from celery.exceptions import Retry

from orchestration.services import automation_actions, triggers
from orchestration.services.automation_actions import ActionsToRetry, automation_firing_act
from tenants.scoping import workspace_scope
from tests.orchestration.automations.engine import action_runs, automation, emit, emitted, event, firings

pytestmark = pytest.mark.django_db


@pytest.fixture
def undelivered():
    """Firings are committed but not handed to the task: the test runs their actions."""
    from orchestration import tasks

    triggers.firing_dispatch_set(lambda workspace_id, firing_ids: None)
    yield
    triggers.firing_dispatch_set(tasks.automation_firings_dispatch)


def _flaky(monkeypatch, failures: int):
    """`do-nothing` whose second action raises (a lost connection, say) the first `failures` times."""
    calls = []

    def handler(run):
        calls.append(run.index)
        if run.index == 1 and calls.count(1) <= failures:
            raise ConnectionError("connection reset")

    monkeypatch.setitem(automation_actions._ACTIONS, "do-nothing", handler)
    return calls


def test_an_unexpected_error_is_retried_and_the_action_runs_once(
    tenant, dev, undelivered, monkeypatch, django_capture_on_commit_callbacks
):
    auto = automation(dev, tenant, expect=["x"], actions=[{"type": "do-nothing"}, {"type": "do-nothing"}])
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (firing,) = firings(tenant, auto)
    calls = _flaky(monkeypatch, failures=1)
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ActionsToRetry, match="connection reset"),
    ):
        automation_firing_act(workspace_id=tenant.workspace.id, firing_id=firing.id)
    # The first action ran; the second left nothing behind, not even a failure.
    assert [(r.action_index, r.state) for r in action_runs(tenant)] == [(0, "executed")]
    assert emitted(tenant, "prefect.automation.action.failed") == []
    with django_capture_on_commit_callbacks(execute=True):
        assert automation_firing_act(workspace_id=tenant.workspace.id, firing_id=firing.id) == 1
    assert calls == [0, 1, 1]  # the first action was not run again
    assert [(r.action_index, r.state) for r in action_runs(tenant)] == [(0, "executed"), (1, "executed")]
    executed = emitted(tenant, "prefect.automation.action.executed")
    assert sorted(e.payload["action_index"] for e in executed) == [0, 1]
    assert executed[0].resource == {
        "prefect.resource.id": f"prefect.automation.{auto}",
        "prefect.resource.name": "auto",
        "prefect.trigger-type": "event",
        "prefect.posture": "Reactive",
    }


def test_on_the_last_attempt_the_failure_is_recorded_with_its_reason(
    tenant, dev, undelivered, monkeypatch, django_capture_on_commit_callbacks
):
    auto = automation(dev, tenant, expect=["x"], actions=[{"type": "do-nothing"}, {"type": "do-nothing"}])
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (firing,) = firings(tenant, auto)
    _flaky(monkeypatch, failures=99)
    with django_capture_on_commit_callbacks(execute=True):
        ran = automation_firing_act(workspace_id=tenant.workspace.id, firing_id=firing.id, final_attempt=True)
    assert ran == 2
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["action_index"] == 1
    assert failed.payload["reason"] == "Unexpected error: ConnectionError('connection reset')"
    assert (
        automation_firing_act(workspace_id=tenant.workspace.id, firing_id=firing.id, final_attempt=True) == 0
    )


def test_the_task_retries_and_records_the_failure_on_its_last_attempt(
    tenant, dev, undelivered, monkeypatch, django_capture_on_commit_callbacks
):
    from orchestration import tasks

    auto = automation(dev, tenant, expect=["x"], actions=[{"type": "do-nothing"}, {"type": "do-nothing"}])
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (firing,) = firings(tenant, auto)
    _flaky(monkeypatch, failures=99)
    args = [str(tenant.workspace.id), str(firing.id)]
    with pytest.raises(Retry):  # scheduled again (eager tasks raise it)
        tasks.run_automation_actions.apply(args=args, retries=0)
    assert [r.action_index for r in action_runs(tenant)] == [0]
    last = tasks.AUTOMATION_ACTION_ATTEMPTS - 1
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.run_automation_actions.apply(args=args, retries=last).get() == 1
    assert [(r.action_index, r.state) for r in action_runs(tenant)] == [(0, "executed"), (1, "failed")]


def test_a_firing_whose_task_was_never_published_is_handed_off_again_by_the_sweep(
    tenant, dev, undelivered, django_capture_on_commit_callbacks
):
    """The broker was down when the batch committed: the firing is stored, its actions are not.
    Beat's sweep hands it off again once it is overdue, runs each action once, and leaves a firing
    whose actions all ran, a fresh one, and one past the horizon alone."""
    import datetime as dt

    from django.utils import timezone

    from orchestration import tasks

    auto = automation(dev, tenant, expect=["x"], actions=[{"type": "do-nothing"}, {"type": "do-nothing"}])
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (firing,) = firings(tenant, auto)
    sent: list[tuple] = []
    triggers.firing_dispatch_set(
        lambda workspace_id, firing_ids: sent.append((workspace_id, list(firing_ids)))
    )
    now = timezone.now()
    assert triggers.automation_firings_redispatch_stalled(now=now) == 0  # not overdue yet
    assert triggers.automation_firings_redispatch_stalled(now=now + dt.timedelta(hours=2)) == 0  # too old
    assert triggers.automation_firings_redispatch_stalled(now=now + dt.timedelta(minutes=3)) == 1
    assert sent == [(tenant.workspace.id, [firing.id])]

    triggers.firing_dispatch_set(tasks.automation_firings_dispatch)  # the eager task runs them now
    with django_capture_on_commit_callbacks(execute=True):
        assert triggers.automation_firings_redispatch_stalled(now=now + dt.timedelta(minutes=3)) == 1
    assert [(r.action_index, r.state) for r in action_runs(tenant)] == [(0, "executed"), (1, "executed")]
    with django_capture_on_commit_callbacks(execute=True):
        assert triggers.automation_firings_redispatch_stalled(now=now + dt.timedelta(minutes=4)) == 0
    assert len(emitted(tenant, "prefect.automation.action.executed")) == 2


def _webhook_automation(tenant, dev, settings):
    from orchestration.models import BlockSchema

    settings.OUTBOUND_WEBHOOK_ALLOWED_CIDRS = ["127.0.0.1/32"]
    assert dev.get(f"{tenant.prefix}/block_types/slug/webhook").status_code == 200
    schema = BlockSchema.objects.for_workspace(tenant.workspace.id).get(block_type__slug="webhook")
    body = {"name": "hook", "block_type_id": str(schema.block_type_id), "block_schema_id": str(schema.id),
            "data": {"url": "http://127.0.0.1:9/hook", "method": "POST", "headers": {}}}  # fmt: skip
    block = dev.post(f"{tenant.prefix}/block_documents/", body, format="json").json()["id"]
    return automation(
        dev, tenant, expect=["x"], actions=[{"type": "call-webhook", "block_document_id": block}]
    )


def test_an_outbound_action_cut_off_mid_call_is_failed_by_the_sweep_and_never_run_again(
    tenant, dev, undelivered, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """The process running a webhook call dies during it: its row stays `running` with no event.
    Once `AUTOMATION_ACTION_TIMEOUT_SECONDS` have passed, the stalled-firing sweep records it as
    failed with the reason and announces it; it is never called again, and if the call ends after
    all, nothing more is recorded."""
    import datetime as dt

    from django.utils import timezone

    from orchestration.services import notifications

    auto = _webhook_automation(tenant, dev, settings)
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (firing,) = firings(tenant, auto)
    calls = []

    def killed(*args, **kwargs):
        calls.append(args)
        raise SystemExit("the worker process is killed")

    monkeypatch.setattr(notifications, "outbound_request", killed)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(SystemExit):
        automation_firing_act(workspace_id=tenant.workspace.id, firing_id=firing.id)
    (record,) = action_runs(tenant)
    assert record.state == "running" and len(calls) == 1
    assert emitted(tenant, "prefect.automation.action.failed") == []

    settings.AUTOMATION_ACTION_TIMEOUT_SECONDS = 600
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert automation_actions.automation_action_runs_fail_stalled(now=now) == 0  # still in its call
        triggers.automation_firings_redispatch_stalled(now=now + dt.timedelta(seconds=601))
    (record,) = action_runs(tenant)
    assert record.state == "failed"
    assert record.reason.startswith("The action was still running 600 seconds after it started")
    (failed,) = emitted(tenant, "prefect.automation.action.failed")
    assert failed.payload["reason"] == record.reason
    assert failed.payload["action_type"] == "call-webhook" and failed.payload["invocation"] == str(firing.id)
    assert failed.resource["prefect.resource.id"] == f"prefect.automation.{auto}"
    assert len(emitted(tenant, "prefect.automation.action.triggered")) == 1

    # Delivered again, swept again: nothing runs or is announced twice.
    with django_capture_on_commit_callbacks(execute=True):
        assert automation_firing_act(workspace_id=tenant.workspace.id, firing_id=firing.id) == 0
        assert automation_actions.automation_action_runs_fail_stalled(now=now + dt.timedelta(hours=1)) == 0
    assert len(calls) == 1
    # The call that was thought dead ends after all: it records nothing over the failure.
    with workspace_scope(tenant.workspace.id), django_capture_on_commit_callbacks(execute=True):
        automation_of = automation_actions._automation_of(firing.automation_id)
        run = automation_actions._Run(firing, 0, firing.actions[0], automation_of)
        assert automation_actions._finish(run, record, None) is False
    assert [r.state for r in action_runs(tenant)] == ["failed"]
    assert emitted(tenant, "prefect.automation.action.executed") == []
    assert len(emitted(tenant, "prefect.automation.action.failed")) == 1


def test_an_action_whose_event_cannot_be_stored_is_still_recorded_and_announced(
    tenant, dev, undelivered, monkeypatch, django_capture_on_commit_callbacks
):
    """Whatever an action reported that the events store refuses, it does not leave the action
    unrecorded: it is announced without its details."""
    from django.db import DataError

    auto = automation(dev, tenant, expect=["x"], actions=[{"type": "do-nothing"}])
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (firing,) = firings(tenant, auto)
    record_events = automation_actions.events_record_on_commit

    def refusing(*, workspace_id, events):
        if "odd" in events[-1]["payload"]:
            raise DataError("unsupported Unicode escape sequence")
        record_events(workspace_id=workspace_id, events=events)

    monkeypatch.setattr(automation_actions, "events_record_on_commit", refusing)
    monkeypatch.setitem(automation_actions._ACTIONS, "do-nothing", lambda run: run.details.update(odd="?"))
    with django_capture_on_commit_callbacks(execute=True):
        assert automation_firing_act(workspace_id=tenant.workspace.id, firing_id=firing.id) == 1
    assert [r.state for r in action_runs(tenant)] == ["executed"]
    (executed,) = emitted(tenant, "prefect.automation.action.executed")
    assert "odd" not in executed.payload and executed.payload["action_type"] == "do-nothing"
