"""The lock each migration takes on PostgreSQL, so an upgrade never holds a long lock on a big table.

Every migration of the project's apps is turned into its SQL (what ``sqlmigrate`` prints) and each
statement is classified by the lock PostgreSQL takes for it (its documentation's "Explicit Locking"
table): ``CREATE INDEX`` takes SHARE (writes wait for the whole build), ``CREATE INDEX
CONCURRENTLY`` SHARE UPDATE EXCLUSIVE (writes go on), most ``ALTER TABLE`` forms ACCESS EXCLUSIVE
(reads wait too), some with a rewrite or a full scan of the table while they hold it.

A statement on a table the same migration creates is harmless (the table is new and empty). On a
table listed in ``BIG_TABLES`` a migration may take nothing stronger than SHARE UPDATE EXCLUSIVE
unless ``ALLOWED`` names it with the reason; the test prints the whole listing (``-s``) and fails for
a new migration that needs an allowance it does not have. The fix is nearly always: build indexes
concurrently (``orchestration/migrations/0008_ui_read_indexes.py``), add columns nullable or with a
constant default, add constraints ``NOT VALID`` and validate them in a later migration.
"""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.loader import MigrationLoader

# Tables that grow with use: runs, their states, task runs, logs, events, audit entries.
BIG_TABLES = frozenset(
    {
        "orchestration_flowrun",
        "orchestration_flowrunstate",
        "orchestration_taskrun",
        "orchestration_taskrunstate",
        "orchestration_log",
        "orchestration_event",
        "audit_auditlogentry",
    }
)

# (app, migration) -> why its strong locks on big tables are acceptable.
ALLOWED: dict[tuple[str, str], str] = {
    ("audit", "0002_hash_chain_append_only"): "before the first release: the audit log held no rows yet",
    ("orchestration", "0003_flow_run_poll_and_scheduler_indexes"): "before the first release: no run history",
    ("orchestration", "0004_task_run_api"): "before the first release: no run history",
    ("orchestration", "0014_row_level_security"): "catalog changes only (row-level security switched on and "
    "one policy per table): no scan and no rewrite, the lock is held for an instant once granted; run "
    "with lock_timeout so it fails and is retried rather than queueing requests behind a long transaction",
}

PROJECT_APPS = ("tenants", "accounts", "audit", "billing", "orchestration", "console", "access", "core")

WEAK = ("none", "SHARE UPDATE EXCLUSIVE")


def classify(statement: str) -> tuple[str | None, str, str]:
    """``(table, lock, note)`` of one SQL statement (table None when it names none)."""
    sql = " ".join(statement.split())
    upper = sql.upper()
    table = _table_of(sql)
    if upper.startswith("CREATE TABLE"):
        return table, "ACCESS EXCLUSIVE", "new table"
    if upper.startswith("CREATE") and " INDEX " in f" {upper} ":
        if "CONCURRENTLY" in upper:
            return table, "SHARE UPDATE EXCLUSIVE", "index built concurrently"
        return table, "SHARE", "index build blocks writes"
    if upper.startswith("DROP INDEX"):
        if "CONCURRENTLY" in upper:
            return None, "SHARE UPDATE EXCLUSIVE", "index dropped concurrently"
        return None, "ACCESS EXCLUSIVE", "index dropped"
    if upper.startswith(("CREATE POLICY", "DROP POLICY")):
        return _trigger_table(sql), "ACCESS EXCLUSIVE", "policy (catalog only, no scan)"
    if upper.startswith("ALTER TABLE"):
        if re.search(r"\b(ENABLE|DISABLE|FORCE|NO FORCE) ROW LEVEL SECURITY\b", upper):
            return table, "ACCESS EXCLUSIVE", "row-level security switched (catalog only, no scan)"
        if re.search(r"\bVALIDATE CONSTRAINT\b", upper):
            return table, "SHARE UPDATE EXCLUSIVE", "constraint validated (scan, writes go on)"
        if re.search(r"\bADD CONSTRAINT\b.*\bFOREIGN KEY\b", upper):
            note = "foreign key NOT VALID" if "NOT VALID" in upper else "foreign key (full scan)"
            return table, "SHARE ROW EXCLUSIVE", note
        if re.search(r"\bALTER COLUMN\b.*\bTYPE\b", upper):
            return table, "ACCESS EXCLUSIVE", "column type change (rewrite)"
        if re.search(r"\bADD COLUMN\b", upper):
            if re.search(r"\bDEFAULT\b.*\b(NOW|RANDOM|GEN_RANDOM_UUID|CLOCK_TIMESTAMP)\s*\(", upper):
                return table, "ACCESS EXCLUSIVE", "column with a volatile default (rewrite)"
            if "NOT NULL" in upper and "DEFAULT" not in upper:
                return table, "ACCESS EXCLUSIVE", "NOT NULL column without a default (fails on rows)"
            return table, "ACCESS EXCLUSIVE", "column added (brief, no rewrite)"
        if re.search(r"\bSET NOT NULL\b", upper):
            return table, "ACCESS EXCLUSIVE", "SET NOT NULL (full scan)"
        if re.search(r"\bADD CONSTRAINT\b", upper):
            return table, "ACCESS EXCLUSIVE", "constraint added (full scan)"
        return table, "ACCESS EXCLUSIVE", "table altered"
    if upper.startswith(("DROP TABLE", "TRUNCATE")):
        return table, "ACCESS EXCLUSIVE", "table dropped or emptied"
    if re.match(r"(CREATE (OR REPLACE )?(CONSTRAINT )?|DROP )TRIGGER\b", upper):
        return _trigger_table(sql), "SHARE ROW EXCLUSIVE", "trigger"
    if upper.startswith(("UPDATE", "DELETE", "INSERT")):
        return table, "ROW EXCLUSIVE", "data change"
    return table, "none", ""


def _table_of(sql: str) -> str | None:
    match = re.search(
        r'(?:TABLE(?: IF (?:NOT )?EXISTS)?|ON|UPDATE|INTO|FROM)\s+(?:ONLY\s+)?"?([A-Za-z0-9_]+)"?', sql, re.I
    )
    return match.group(1).lower() if match else None


def _trigger_table(sql: str) -> str | None:
    match = re.search(r'\bON\s+"?([A-Za-z0-9_]+)"?', sql, re.I)
    return match.group(1).lower() if match else None


def migration_statements(loader: MigrationLoader, key: tuple[str, str]) -> list[str]:
    """What ``sqlmigrate`` prints for the migration, one string a statement."""
    plan = [(loader.graph.nodes[key], False)]
    sql = loader.collect_sql(plan)
    return [s for s in sql if s.strip() and not s.lstrip().startswith("--")]


def lock_listing() -> list[dict]:
    loader = MigrationLoader(connection, replace_migrations=False)
    project = {app.label for app in apps.get_app_configs() if app.name in PROJECT_APPS}
    rows = []
    for key in sorted(k for k in loader.graph.nodes if k[0] in project):
        created: set[str] = set()
        for statement in migration_statements(loader, key):
            table, lock, note = classify(statement)
            if note == "new table" and table:
                created.add(table)
            rows.append(
                {
                    "migration": key,
                    "table": table,
                    "lock": lock,
                    "note": note,
                    "new_table": table in created,
                    "statement": " ".join(statement.split())[:160],
                }
            )
    return rows


@pytest.mark.skipif(connection.vendor != "postgresql", reason="lock levels are PostgreSQL's")
# Outside a transaction: a migration that builds indexes concurrently cannot be collected in one.
@pytest.mark.django_db(transaction=True)
def test_migrations_take_no_long_lock_on_big_tables(capsys):
    rows = lock_listing()
    assert rows, "no migration SQL was collected"
    offending: dict[tuple[str, str], list[dict]] = {}
    with capsys.disabled():
        print("\nmigration | table | lock | note")
        for row in rows:
            if row["lock"] == "none":
                continue
            app, name = row["migration"]
            print(
                f"{app}.{name} | {row['table']} | {row['lock']} | {row['note']}{' (new table)' * row['new_table']}"
            )
    for row in rows:
        if row["table"] in BIG_TABLES and not row["new_table"] and row["lock"] not in WEAK:
            if row["lock"] == "ROW EXCLUSIVE":
                continue  # a data change takes row locks only
            offending.setdefault(row["migration"], []).append(row)
    unexplained = {key: found for key, found in offending.items() if key not in ALLOWED}
    assert not unexplained, "\n".join(
        f"{app}.{name}: {row['lock']} on {row['table']} ({row['note']}): {row['statement']}"
        for (app, name), found in unexplained.items()
        for row in found
    )
    # An allowance that no longer allows anything is stale.
    assert not set(ALLOWED) - set(offending), set(ALLOWED) - set(offending)


def test_the_classifier_knows_the_dangerous_forms():
    assert classify('CREATE INDEX "x" ON "orchestration_log" ("workspace_id")')[1:] == (
        "SHARE",
        "index build blocks writes",
    )
    assert (
        classify('CREATE INDEX CONCURRENTLY "x" ON "orchestration_log" ("a")')[1] == "SHARE UPDATE EXCLUSIVE"
    )
    table, lock, note = classify(
        'ALTER TABLE "orchestration_flowrun" ADD COLUMN "t" timestamp DEFAULT now() NOT NULL'
    )
    assert (table, lock) == ("orchestration_flowrun", "ACCESS EXCLUSIVE") and "volatile" in note
    assert "no rewrite" in classify('ALTER TABLE "orchestration_flowrun" ADD COLUMN "n" integer NULL')[2]
    assert classify('ALTER TABLE "orchestration_taskrun" ALTER COLUMN "name" TYPE text')[2].endswith(
        "(rewrite)"
    )
    fk = 'ALTER TABLE "orchestration_log" ADD CONSTRAINT "f" FOREIGN KEY ("w") REFERENCES "t" ("id")'
    assert classify(fk)[1:] == ("SHARE ROW EXCLUSIVE", "foreign key (full scan)")
    assert classify(fk + " NOT VALID")[2] == "foreign key NOT VALID"
    trigger = (
        'CREATE OR REPLACE TRIGGER t BEFORE UPDATE ON "audit_auditlogentry" FOR EACH ROW EXECUTE FUNCTION f()'
    )
    assert classify(trigger) == ("audit_auditlogentry", "SHARE ROW EXCLUSIVE", "trigger")
    assert classify('ALTER TABLE "orchestration_log" FORCE ROW LEVEL SECURITY')[:2] == (
        "orchestration_log",
        "ACCESS EXCLUSIVE",
    )
    policy = 'CREATE POLICY workspace_isolation ON "orchestration_log" USING (workspace_id = x)'
    assert classify(policy) == ("orchestration_log", "ACCESS EXCLUSIVE", "policy (catalog only, no scan)")
