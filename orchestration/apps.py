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
        # Runs written with save()/create(); bulk writes and deletes call poll_answers_changed().
        post_save.connect(poll_answers_changed, sender=FlowRun, dispatch_uid="poll-answers-flow-run")
