"""The event feed of one flow, deployment or work pool (the UI's ``events/filter`` with
``any_resource`` or ``related`` by id): a GIN index over the related resources
(``jsonb_path_ops``), which answers ``related @> [{"prefect.resource.id": …}]``. A GIN index
cannot lead with the workspace without the ``btree_gin`` extension; the query keeps its
workspace and time conditions, which PostgreSQL combines with it. PostgreSQL only, built
``CONCURRENTLY``; on other databases nothing is built (their filter reads each event's related
resources)."""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class AddIndexConcurrentlyPostgresOnly(AddIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("orchestration", "0008_ui_read_indexes"),
    ]

    operations = [
        AddIndexConcurrentlyPostgresOnly(
            model_name="event",
            index=GinIndex(fields=["related"], opclasses=["jsonb_path_ops"], name="event_related"),
        ),
    ]
