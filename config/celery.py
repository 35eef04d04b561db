"""The Celery app. Tasks live in each app's ``tasks.py`` and are thin wrappers around services.

A worker or beat prepares the embedded default (``config.embedded.prepare``) when the app first loads
its configuration, which is before it reads Django's settings or connects to the broker; importing
this module writes nothing.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

from config import metrics_server  # noqa: F401 - connects the task signals and the worker's and beat's /metrics
from config.embedded import prepare

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("controlplane")


@app.on_configure.connect
def _prepare_embedded_default(sender, **kwargs) -> None:
    prepare()


app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "audit-purge-expired": {
        "task": "audit.tasks.purge_expired_audit_records",
        "schedule": crontab(minute=17, hour=3),
    },
    # Records written without waiting on their chain (reads of secrets) join it within seconds.
    "audit-chain-pending": {"task": "audit.tasks.chain_pending_audit_records", "schedule": 5.0},
    # Every chain re-walked, for /metrics' verification status (a broken chain is also logged).
    "audit-verify-chains": {"task": "audit.tasks.verify_audit_chains", "schedule": 3600.0},
    "scim-activity-purge-expired": {
        "task": "accounts.tasks.purge_expired_scim_activity",
        "schedule": crontab(minute=27, hour=3),
    },
    # Retention by plan: runs, logs, events and artifacts, deleted in short batches.
    "orchestration-retention": {
        "task": "orchestration.purge_expired_run_data",
        "schedule": crontab(minute=37, hour=3),
    },
    "sso-purge-expired": {"task": "accounts.tasks.purge_expired_sso_state", "schedule": 3600.0},
    # A read-only account that freed what it must (through any door) moves to Hobby.
    "billing-read-only-recheck": {"task": "billing.recheck_read_only_accounts", "schedule": 60.0},
    # An invitation past its time releases its seat: marked expired, the release in the seat ledger.
    "invitations-expire": {"task": "accounts.tasks.expire_invitations", "schedule": 300.0},
    "orchestration-scheduler": {"task": "orchestration.schedule_deployments", "schedule": 30.0},
    "orchestration-late-runs": {"task": "orchestration.mark_late_runs", "schedule": 5.0},
    "orchestration-crashed-runs": {"task": "orchestration.mark_crashed_runs", "schedule": 30.0},
    "orchestration-abandoned-cancellations": {
        "task": "orchestration.finish_abandoned_cancellations",
        "schedule": 15.0,
    },
    # Prefect's CancellationCleanup loop (20 s by default).
    "orchestration-cancellation-cleanup": {"task": "orchestration.cancellation_cleanup", "schedule": 20.0},
    # Prefect's FailExpiredPauses loop (5 s by default).
    "orchestration-expired-pauses": {"task": "orchestration.fail_expired_pauses", "schedule": 5.0},
    "orchestration-concurrency-leases": {"task": "orchestration.expire_concurrency_leases", "schedule": 5.0},
    # Stripe events whose processing task was lost or failed for good are tried again.
    "billing-pending-stripe-events": {"task": "billing.process_pending_stripe_events", "schedule": 300.0},
    # Prefect's triggers service sweeps closed buckets on its periodic evaluation.
    "orchestration-automation-buckets": {"task": "orchestration.sweep_automation_buckets", "schedule": 60.0},
    # Automation firings whose actions' task was never published (the broker down) or was lost.
    "orchestration-stalled-firings": {"task": "orchestration.redispatch_stalled_firings", "schedule": 60.0},
    # Prefect's proactive triggers are evaluated every 5 s (its periodic granularity).
    "orchestration-proactive-triggers": {
        "task": "orchestration.evaluate_proactive_triggers",
        "schedule": 5.0,
    },
}
