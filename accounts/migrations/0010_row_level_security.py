"""Row-level security on the workspace-owned table of accounts (the workspace role grants), as on
orchestration's tables (``orchestration/migrations/0014_row_level_security``; ``tenants.rls``).
PostgreSQL only; catalog changes only.
"""

from django.db import migrations
from django.db.migrations.operations.base import Operation

TABLES = ("accounts_workspacerolegrant",)

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
        ("accounts", "0009_invitation_expired"),
    ]

    operations = [WorkspaceRowLevelSecurity(TABLES)]
