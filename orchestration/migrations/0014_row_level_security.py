"""Row-level security on every workspace-owned table of orchestration (``tenants.rls`` says how the
setting is set and reset). PostgreSQL only; nothing on SQLite.

Each table gets row-level security enabled and forced (its owner is held to it too) and one policy:
a row is visible and writable when ``controlplane.workspace_id`` is unset or empty (the system
context) or names the row's workspace. The setting is read in scalar subqueries, which PostgreSQL
evaluates once per statement. Catalog changes only: no table is scanned or rewritten.
"""

from django.db import migrations
from django.db.migrations.operations.base import Operation

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

WORKSPACE = "(SELECT NULLIF(current_setting('controlplane.workspace_id', true), '')::uuid)"


class WorkspaceRowLevelSecurity(Operation):
    """Enable, force and add the ``workspace_isolation`` policy on PostgreSQL tables (written to
    ``sqlmigrate`` too); nothing on another database."""

    reduces_to_sql = True
    reversible = True

    def __init__(self, tables):
        self.tables = tuple(tables)

    def deconstruct(self):
        return self.__class__.__name__, [], {"tables": self.tables}

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in self.tables:
            schema_editor.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
            schema_editor.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
            schema_editor.execute(
                f'CREATE POLICY workspace_isolation ON "{table}" '
                f"USING ({WORKSPACE} IS NULL OR workspace_id = {WORKSPACE})"
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in self.tables:
            schema_editor.execute(f'DROP POLICY IF EXISTS workspace_isolation ON "{table}"')
            schema_editor.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
            schema_editor.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')

    def describe(self):
        return f"Row-level security by workspace on {len(self.tables)} tables"


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0013_incoming_webhooks"),
    ]

    operations = [WorkspaceRowLevelSecurity(TABLES)]
