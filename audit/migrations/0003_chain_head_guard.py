"""Tighter append-only rules on PostgreSQL.

Entries: a DELETE is the retention purge's only, and even with ``audit.allow_purge`` on it may
remove only an entry at or before its chain's checkpoint (the purge records the checkpoint first)
and older than the shortest retention of any plan (7 days). So whoever can set the flag still
cannot drop a recent entry, nor any entry the chain head does not already account as purged.

Chain heads: a head only moves forward. Its sequence and checkpoint never decrease, its hash changes
only with a new sequence and names the entry stored there (as does a new checkpoint's hash), the
checkpoint never passes the head, and a head is never deleted. Rewriting the head to hide entries
deleted from the end is refused.
"""

from django.db import migrations

# 7 days: the shortest retention of any plan (billing/plans.py: Hobby).
GUARD = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE'
        AND coalesce(current_setting('audit.allow_purge', true), '') = 'on'
        AND OLD.occurred < now() - interval '7 days'
        AND (
            OLD.sequence = 0
            OR OLD.sequence <= (
                SELECT checkpoint_sequence FROM audit_auditchain WHERE id = OLD.chain
            )
        )
    THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION USING
        MESSAGE = 'audit log entries are append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION audit_chain_forward_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION USING
            MESSAGE = 'audit chain heads are never deleted',
            ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.id <> OLD.id
        OR NEW.sequence < OLD.sequence
        OR NEW.checkpoint_sequence < OLD.checkpoint_sequence
        OR NEW.checkpoint_sequence > NEW.sequence
        OR (NEW.sequence = OLD.sequence AND NEW.head_hash <> OLD.head_hash)
        OR (NEW.checkpoint_sequence = OLD.checkpoint_sequence
            AND NEW.checkpoint_hash <> OLD.checkpoint_hash)
        OR (NEW.sequence > OLD.sequence AND NOT EXISTS (
            SELECT 1 FROM audit_auditlogentry
            WHERE chain = NEW.id AND sequence = NEW.sequence AND hash = NEW.head_hash))
        OR (NEW.checkpoint_sequence > OLD.checkpoint_sequence AND NOT EXISTS (
            SELECT 1 FROM audit_auditlogentry
            WHERE chain = NEW.id AND sequence = NEW.checkpoint_sequence
                AND hash = NEW.checkpoint_hash))
    THEN
        RAISE EXCEPTION USING
            MESSAGE = 'audit chain heads only move forward, to entries that exist',
            ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_chain_forward_only ON audit_auditchain;
CREATE TRIGGER audit_chain_forward_only BEFORE UPDATE OR DELETE ON audit_auditchain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_forward_only();
"""

# Back to 0002's rules.
UNGUARD = """
DROP TRIGGER IF EXISTS audit_chain_forward_only ON audit_auditchain;
DROP FUNCTION IF EXISTS audit_chain_forward_only();
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('audit.allow_purge', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION USING
        MESSAGE = 'audit log entries are append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_hash_chain_append_only")]

    operations = [migrations.RunPython(_on_postgresql(GUARD), _on_postgresql(UNGUARD))]
