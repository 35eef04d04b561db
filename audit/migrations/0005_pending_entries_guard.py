"""Pending audit entries on PostgreSQL: a row is never changed, and is deleted only once its chain
holds the entry (an audit log entry with the same id), so a pending record cannot be dropped
without having joined the chain."""

from django.db import migrations

GUARD = """
CREATE OR REPLACE FUNCTION audit_pending_until_chained() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_auditlogentry WHERE id = OLD.entry_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION USING
        MESSAGE = 'pending audit entries leave only by joining their chain: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_pending_until_chained ON audit_auditpendingentry;
CREATE TRIGGER audit_pending_until_chained BEFORE UPDATE OR DELETE ON audit_auditpendingentry
    FOR EACH ROW EXECUTE FUNCTION audit_pending_until_chained();
"""

UNGUARD = """
DROP TRIGGER IF EXISTS audit_pending_until_chained ON audit_auditpendingentry;
DROP FUNCTION IF EXISTS audit_pending_until_chained();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_pending_entries")]

    operations = [migrations.RunPython(_on_postgresql(GUARD), _on_postgresql(UNGUARD))]
