"""Row-level security on every workspace-owned table of orchestration (``tenants.rls`` says how the
setting is set and reset). PostgreSQL only; nothing on SQLite.

Each table gets row-level security enabled and forced (its owner is held to it too) and one policy:
a row is visible and writable when ``controlplane.workspace_id`` is unset or empty (the system
context) or names the row's workspace. The setting is read in scalar subqueries, which PostgreSQL
evaluates once per statement. Catalog changes only: no table is scanned or rewritten.
"""

from django.db import migrations

from tenants.rls import WorkspaceRowLevelSecurity

TABLES = (
    "orchestration_artifact",
    "orchestration_automation",
    "orchestration_automationrelatedresource",
    "orchestration_automationbucket",
    "orchestration_automationfiring",
    "orchestration_automationchildfiring",
    "orchestration_automationactionrun",
    "orchestration_blocktype",
    "orchestration_blockschema",
    "orchestration_blockdocument",
    "orchestration_blockdocumentreference",
    "orchestration_concurrencylimitv2",
    "orchestration_concurrencylease",
    "orchestration_taskrunconcurrencylimit",
    "orchestration_deployment",
    "orchestration_deploymentschedule",
    "orchestration_event",
    "orchestration_eventresource",
    "orchestration_flowruninput",
    "orchestration_flowrun",
    "orchestration_flowrunstate",
    "orchestration_flow",
    "orchestration_log",
    "orchestration_savedsearch",
    "orchestration_resultstoragedefault",
    "orchestration_taskrun",
    "orchestration_taskrunstate",
    "orchestration_taskworker",
    "orchestration_variable",
    "orchestration_webhook",
    "orchestration_workpool",
    "orchestration_workqueue",
    "orchestration_worker",
)


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0013_incoming_webhooks"),
    ]

    operations = [WorkspaceRowLevelSecurity(TABLES)]
