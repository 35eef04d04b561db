from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Models can only be imported once the app registry is ready (Django's app loading
        # imports this module first), so the signal wiring imports them here.
        from orchestration.models import FlowRun, WorkPool, WorkQueue
        from orchestration.selectors.work_pools import poll_answers_changed, pool_memo_clear

        for model in (WorkPool, WorkQueue):
            post_save.connect(pool_memo_clear, sender=model, dispatch_uid=f"pool-memo-save-{model.__name__}")
            post_delete.connect(
                pool_memo_clear, sender=model, dispatch_uid=f"pool-memo-delete-{model.__name__}"
            )
        # The trigger engine listens to the events store, and hands firings (and batches whose
        # evaluation failed) to Celery tasks: both sit above the store, so they are wired here.
        from orchestration import tasks
        from orchestration.events.services import events_stored_listen
        from orchestration.models import Automation
        from orchestration.services.triggers import (
            automations_memo_clear,
            evaluation_dispatch_set,
            events_stored_listener,
            firing_dispatch_set,
        )

        events_stored_listen(events_stored_listener)
        firing_dispatch_set(tasks.automation_firings_dispatch)
        evaluation_dispatch_set(tasks.stored_events_evaluate_later)
        post_save.connect(automations_memo_clear, sender=Automation, dispatch_uid="automations-memo-save")
        post_delete.connect(automations_memo_clear, sender=Automation, dispatch_uid="automations-memo-delete")
        # Runs written with save()/create(); bulk writes and deletes call poll_answers_changed().
        post_save.connect(poll_answers_changed, sender=FlowRun, dispatch_uid="poll-answers-flow-run")
