"""Indexes for the audit log's filters on a big account (the console's audit log page and the
account API's ``audit_events``, one selector): a page is the newest 50 entries of one chain that
match, read backwards on ``(chain, sequence)``. With a million entries, a filter that matches
few of them (an event type the account rarely writes, a target id or name) walked the whole
chain: ``EXPLAIN ANALYZE`` of a target that matches nothing read 1,000,017 rows in 748 ms. Each
index leads with the chain and the filtered column and ends with the sequence, so the page (and
a deep page through ``?before=``) is read off the index in order: by event type, by target id,
by target label (the target filter is ``target_id = x OR target_label = x``, a ``BitmapOr`` of
the last two). Partial on ``sequence > 0`` as the selector's condition is.

Built ``CONCURRENTLY`` on PostgreSQL, so the table stays writable while they build."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """``CREATE INDEX CONCURRENTLY`` on PostgreSQL; a plain ``CREATE INDEX`` elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0005_pending_entries_guard"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="auditlogentry",
            index=models.Index(
                condition=models.Q(("sequence__gt", 0)),
                fields=["chain", "api_name", "-sequence"],
                name="audit_chain_event",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="auditlogentry",
            index=models.Index(
                condition=models.Q(("sequence__gt", 0)),
                fields=["chain", "target_id", "-sequence"],
                name="audit_chain_target_id",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="auditlogentry",
            index=models.Index(
                condition=models.Q(("sequence__gt", 0)),
                fields=["chain", "target_label", "-sequence"],
                name="audit_chain_target_label",
            ),
        ),
    ]
