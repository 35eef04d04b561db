"""Held ``expect`` events of proactive triggers with ``after`` (Prefect's ``automation_held_events``):
a new, empty table, with the workspace row-level security every workspace-owned table has."""

import uuid

import django.db.models.deletion
from django.db import migrations, models

from tenants.rls import WorkspaceRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0015_automation_bucket_awaiting_resolution"),
        ("tenants", "0003_account_plan_limits"),
    ]

    operations = [
        migrations.CreateModel(
            name="AutomationHeldEvent",
            fields=[
                (
                    "id",
                    models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False),
                ),
                ("trigger_id", models.UUIDField()),
                ("bucketing_key", models.TextField()),
                ("event_id", models.UUIDField()),
                ("occurred", models.DateTimeField()),
                ("updated", models.DateTimeField(auto_now=True)),
                (
                    "automation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="held_events",
                        to="orchestration.automation",
                    ),
                ),
                (
                    "workspace",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenants.workspace"
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["automation", "trigger_id", "bucketing_key", "occurred"],
                        name="automation_held_event_window",
                    ),
                    models.Index(fields=["updated"], name="automation_held_event_updated"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("automation", "trigger_id", "bucketing_key", "event_id"),
                        name="automation_held_event_unique",
                    )
                ],
            },
        ),
        WorkspaceRowLevelSecurity(["orchestration_automationheldevent"]),
    ]
