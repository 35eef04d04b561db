"""Deferred trigger evaluations: a stored batch whose evaluation failed is evaluated again by a task,
and this row, written in that evaluation's transaction, makes it count once. A new, empty table, with
the workspace row-level security every workspace-owned table has."""

import django.db.models.deletion
from django.db import migrations, models

from tenants.rls import WorkspaceRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0016_automation_held_events"),
        ("tenants", "0003_account_plan_limits"),
    ]

    operations = [
        migrations.CreateModel(
            name="AutomationDeferredEvaluation",
            fields=[
                ("id", models.UUIDField(editable=False, primary_key=True, serialize=False)),
                ("created", models.DateTimeField(auto_now_add=True)),
                (
                    "workspace",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenants.workspace"
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["created"], name="automation_deferred_created")],
            },
        ),
        WorkspaceRowLevelSecurity(["orchestration_automationdeferredevaluation"]),
    ]
