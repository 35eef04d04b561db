"""Indexes for the reads behind Prefect's UI on a big workspace, each led by the workspace:

* the dashboard's task-run counts: task runs started in a window, their state carried in the
  index (``INCLUDE``, PostgreSQL) so they are counted from the index alone;
* the runs lists sorted by start time (a work pool's, a deployment's, the runs page): a page is
  read off ``(workspace, start_time DESC, id DESC)``;
* a work pool's runs: by the pool, or by one of its queues, the two halves of the filter's ``OR``.

Built ``CONCURRENTLY`` on PostgreSQL, so the tables stay writable while they build."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """``CREATE INDEX CONCURRENTLY`` on PostgreSQL (the table stays writable while a big index
    builds); a plain ``CREATE INDEX`` elsewhere (SQLite has no such option)."""

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
        ("orchestration", "0007_automations_saved_searches"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="taskrun",
            index=models.Index(
                fields=["workspace", "start_time"], include=["state_type"], name="task_run_ws_start"
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="flowrun",
            index=models.Index(fields=["workspace", "-start_time", "-id"], name="flow_run_ws_start"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="flowrun",
            index=models.Index(fields=["workspace", "work_pool_id"], name="flow_run_ws_pool"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="flowrun",
            index=models.Index(fields=["workspace", "work_queue_id"], name="flow_run_ws_queue"),
        ),
    ]
