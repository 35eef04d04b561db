"""Row-level security on the workspace-owned table of accounts (the workspace role grants), as on
orchestration's tables (``orchestration/migrations/0014_row_level_security``; ``tenants.rls``).
PostgreSQL only; catalog changes only.
"""

from django.db import migrations

from tenants.rls import WorkspaceRowLevelSecurity

TABLES = ("accounts_workspacerolegrant",)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_invitation_expired"),
    ]

    operations = [WorkspaceRowLevelSecurity(TABLES)]
