"""``EventResource``: one row per event and resource it involves (its own, role ``""``, and each
related one), as Prefect's ``event_resources``, so the event feed of one flow run, deployment or
flow reads that resource's rows through ``(workspace, resource_id, occurred)`` instead of every
event of the window. It replaces the GIN index over ``related`` (``event_related``, 0009), which
no query uses any more and which every event insert paid for.

On a big ``orchestration_event`` table:

1. the table is created with its primary key ``(event_id, resource_id, resource_role)`` only;
2. existing events are copied in batches of ``BATCH`` events, walked by primary key (keyset, each
   batch its own short transaction, ``ON CONFLICT DO NOTHING``), so no long transaction or lock is
   held on ``orchestration_event``: readers and writers go on meanwhile. It reads each event's
   resource id and related resources once (about 10 million events in a few minutes here);
3. the secondary index is built after the copy (faster than maintaining it row by row),
   ``CONCURRENTLY`` on PostgreSQL;
4. the GIN index is dropped ``CONCURRENTLY`` (PostgreSQL; it exists nowhere else).

Events stored by a server still running the previous release while this runs get no rows here:
run the migration before starting the new release's servers (as the deploy does), or stop event
ingest meanwhile. Run again on the same data, the copy writes nothing twice.
"""

import django.db.models.deletion
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models, transaction

BATCH = 2000


def _rows(EventResource, event):
    event_id, workspace_id, occurred, resource_id, related = event
    seen = {(resource_id, "")}
    rows = [
        EventResource(
            event_id=event_id,
            workspace_id=workspace_id,
            resource_id=resource_id,
            resource_role="",
            occurred=occurred,
        )
    ]
    for resource in related or []:
        if not isinstance(resource, dict):
            continue
        key = (resource.get("prefect.resource.id"), resource.get("prefect.resource.role"))
        # Stored before related ids and roles were bounded: what cannot be kept is left out.
        if not all(isinstance(part, str) and 0 < len(part) <= 255 for part in key) or key in seen:
            continue
        seen.add(key)
        rows.append(
            EventResource(
                event_id=event_id,
                workspace_id=workspace_id,
                resource_id=key[0],
                resource_role=key[1],
                occurred=occurred,
            )
        )
    return rows


def backfill(apps, schema_editor):
    Event = apps.get_model("orchestration", "Event")
    EventResource = apps.get_model("orchestration", "EventResource")
    db = schema_editor.connection.alias
    events = Event._base_manager.using(db).order_by("id")
    last = None
    while True:
        page = events if last is None else events.filter(id__gt=last)
        batch = list(page.values_list("id", "workspace_id", "occurred", "resource_id", "related")[:BATCH])
        if not batch:
            return
        with transaction.atomic(using=db):
            EventResource._base_manager.using(db).bulk_create(
                [row for event in batch for row in _rows(EventResource, event)], ignore_conflicts=True
            )
        last = batch[-1][0]


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


class RemoveIndexConcurrentlyPostgresOnly(RemoveIndexConcurrently):
    """The GIN index was only ever built on PostgreSQL (0009)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("orchestration", "0010_automation_buckets_firings"),
        ("tenants", "0002_account_billing_status"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventResource",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "event",
                        "resource_id",
                        "resource_role",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("resource_id", models.CharField(max_length=255)),
                ("resource_role", models.CharField(blank=True, max_length=255)),
                ("occurred", models.DateTimeField()),
                (
                    "event",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="orchestration.event",
                    ),
                ),
                (
                    "workspace",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.workspace",
                    ),
                ),
            ],
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
        AddIndexConcurrentlyOnPostgres(
            model_name="eventresource",
            index=models.Index(
                fields=["workspace", "resource_id", "occurred"],
                include=("event", "resource_role"),
                name="event_resource_ws_id_occurred",
            ),
        ),
        RemoveIndexConcurrentlyPostgresOnly(model_name="event", name="event_related"),
    ]
